"""A client generated from proto/ alone (grpcio-tools), driving a real Arca node.

Usage: client.py STUB_DIR ADDR CA_PEM TOKEN. Prints "python client ok" on success; any failure raises.
"""
import sys

stub_dir, addr, ca_path, token = sys.argv[1:5]
sys.path.insert(0, stub_dir)

import grpc  # noqa: E402
from arca.v1 import secrets_pb2, secrets_pb2_grpc, vaults_pb2, vaults_pb2_grpc  # noqa: E402

creds = grpc.ssl_channel_credentials(root_certificates=open(ca_path, "rb").read())
channel = grpc.secure_channel(addr, creds)
md = [("authorization", "Bearer " + token)]
vaults = vaults_pb2_grpc.VaultServiceStub(channel)
secrets = secrets_pb2_grpc.SecretServiceStub(channel)

vault = vaults.CreateVault(vaults_pb2.CreateVaultRequest(name="from-python", soft_delete_retention_days=7), metadata=md)
assert vault.recovery_level == "CustomizedRecoverable+Purgeable", vault

first = secrets.SetSecret(secrets_pb2.SetSecretRequest(vault="from-python", name="api-key", value="one"), metadata=md)
second = secrets.SetSecret(secrets_pb2.SetSecretRequest(vault="from-python", name="api-key", value="two"), metadata=md)
assert len(first.version) == 32 and first.version != second.version

latest = secrets.GetSecret(secrets_pb2.GetSecretRequest(vault="from-python", name="api-key"), metadata=md)
assert latest.value == "two", latest
old = secrets.GetSecret(secrets_pb2.GetSecretRequest(vault="from-python", name="api-key", version=first.version), metadata=md)
assert old.value == "one", old

versions = secrets.ListSecretVersions(secrets_pb2.ListSecretVersionsRequest(vault="from-python", name="api-key"), metadata=md)
assert len(versions.secrets) == 2 and all(s.value == "" for s in versions.secrets)

blob = secrets.BackupSecret(secrets_pb2.BackupSecretRequest(vault="from-python", name="api-key"), metadata=md).value
deleted = secrets.DeleteSecret(secrets_pb2.DeleteSecretRequest(vault="from-python", name="api-key"), metadata=md)
assert deleted.recovery_id.endswith("/deletedsecrets/api-key"), deleted
try:
    secrets.GetSecret(secrets_pb2.GetSecretRequest(vault="from-python", name="api-key"), metadata=md)
    raise AssertionError("a deleted secret must not be readable")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e
secrets.RecoverDeletedSecret(secrets_pb2.RecoverDeletedSecretRequest(vault="from-python", name="api-key"), metadata=md)
secrets.DeleteSecret(secrets_pb2.DeleteSecretRequest(vault="from-python", name="api-key"), metadata=md)
secrets.PurgeDeletedSecret(secrets_pb2.PurgeDeletedSecretRequest(vault="from-python", name="api-key"), metadata=md)
restored = secrets.RestoreSecret(secrets_pb2.RestoreSecretRequest(vault="from-python", backup=blob), metadata=md)
assert restored.version == second.version, restored

try:
    secrets.GetSecret(secrets_pb2.GetSecretRequest(vault="from-python", name="api-key"))
    raise AssertionError("a call without a token must be refused")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e

print("python client ok")
