"""Signing in from a client generated from proto/ alone: as a service principal with its client
secret at the token endpoint, as a managed identity whose token the local arca agent hands out
(asked as Azure's IMDS is asked, over the agent's Unix socket), and as a person with the ID token
their OpenID Connect provider issued (RFC 7523's jwt-bearer grant).

Also as a service principal with a certificate presented over mutual TLS (its token bound to it),
and as one that trusts another provider's workload tokens (client_assertion, no secret).

Usage: identity.py STUB_DIR ADDR CA_PEM CLIENT_ID CLIENT_SECRET AGENT_SOCKET ID_TOKEN CERT_CLIENT_ID
CERT_AND_KEY_PEM FEDERATED_CLIENT_ID WORKLOAD_TOKEN. Prints "python identity ok".
"""
import json
import socket
import sys

(stub_dir, addr, ca_path, client_id, client_secret, agent_socket, id_token, cert_client_id, cert_pem_path,
 federated_client_id, workload_token) = sys.argv[1:12]
sys.path.insert(0, stub_dir)

import grpc  # noqa: E402
from arca.v1 import identity_pb2, identity_pb2_grpc, secrets_pb2, secrets_pb2_grpc  # noqa: E402

channel = grpc.secure_channel(addr, grpc.ssl_channel_credentials(root_certificates=open(ca_path, "rb").read()))
auth = identity_pb2_grpc.AuthServiceStub(channel)
secrets = secrets_pb2_grpc.SecretServiceStub(channel)


def read(vault, token):
    request = secrets_pb2.GetSecretRequest(vault=vault, name="db")
    return secrets.GetSecret(request, metadata=[("authorization", "Bearer " + token)]).value


def refused(vault, token):
    try:
        read(vault, token)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
        return
    raise AssertionError(f"{vault} must be refused")


# A service principal: its secret is exchanged for an access token; it reads only its own vault.
token = auth.Token(
    identity_pb2.TokenRequest(grant_type="client_credentials", client_id=client_id, client_secret=client_secret)
).access_token
assert read("appa", token) == "appa-secret"
refused("appb", token)
# A wrong secret yields no token, and says nothing about whether the client exists.
for cid in (client_id, "00000000-0000-0000-0000-000000000000"):
    try:
        auth.Token(identity_pb2.TokenRequest(grant_type="client_credentials", client_id=cid, client_secret="arcs_x" * 8))
        raise AssertionError("a wrong secret must yield no token")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())

# A managed identity: the process holds nothing; the agent attests it and hands it a token.
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(agent_socket)
sock.sendall(
    b"GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=arca HTTP/1.1\r\n"
    b"Host: localhost\r\nMetadata: true\r\nConnection: close\r\n\r\n"
)
answer = b""
while chunk := sock.recv(65536):
    answer += chunk
head, body = answer.split(b"\r\n\r\n", 1)
assert head.startswith(b"HTTP/1.1 200"), answer
reply = json.loads(body)
assert reply["token_type"] == "Bearer" and int(reply["expires_in"]) > 0, reply
assert read("appb", reply["access_token"]) == "appb-secret"
refused("appa", reply["access_token"])

# A person: the provider's ID token is exchanged for an Arca access token; the groups claim makes
# them a member of the group that reads appa, and of nothing else.
token = auth.Token(
    identity_pb2.TokenRequest(grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", assertion=id_token)
).access_token
assert read("appa", token) == "appa-secret"
refused("appb", token)
# The same ID token as an application's client assertion signs nobody in.
try:
    auth.Token(
        identity_pb2.TokenRequest(
            grant_type="client_credentials",
            client_id=client_id,
            client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion=id_token,
        )
    )
    raise AssertionError("an ID token is no client assertion")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())

# A certificate over mutual TLS: the connection presents it, the token endpoint takes it as the
# credential, and the token is bound to it: it works on this connection, not on one without it.
pem = open(cert_pem_path, "rb").read()
split = pem.index(b"-----BEGIN PRIVATE KEY-----")
tls = grpc.ssl_channel_credentials(
    root_certificates=open(ca_path, "rb").read(), private_key=pem[split:], certificate_chain=pem[:split]
)
mtls = grpc.secure_channel(addr, tls)
token = identity_pb2_grpc.AuthServiceStub(mtls).Token(
    identity_pb2.TokenRequest(grant_type="client_credentials", client_id=cert_client_id)
).access_token
bound = secrets_pb2_grpc.SecretServiceStub(mtls).GetSecret(
    secrets_pb2.GetSecretRequest(vault="appa", name="db"), metadata=[("authorization", "Bearer " + token)]
)
assert bound.value == "appa-secret"
try:
    read("appa", token)
    raise AssertionError("a bound token must be refused on a connection without its certificate")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())

# A workload token from another provider, as the client assertion of a federated service principal.
token = auth.Token(
    identity_pb2.TokenRequest(
        grant_type="client_credentials",
        client_id=federated_client_id,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=workload_token,
    )
).access_token
assert read("appb", token) == "appb-secret"
refused("appa", token)

print("python identity ok")
