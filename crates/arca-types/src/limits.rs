//! Every limit Arca enforces at its edge, named with its unit last. Each is tested at the limit and at
//! limit+1 by the crate that checks it.

/// Largest secret value accepted, in bytes of UTF-8 (Azure documents 25k bytes).
pub const SECRET_VALUE_BYTES_MAX: usize = 25_600;
/// Longest content type accepted, in characters.
pub const CONTENT_TYPE_CHARS_MAX: usize = 255;
/// Most tags one object or vault may carry.
pub const TAGS_COUNT_MAX: usize = 15;
/// Longest tag name or tag value, in characters.
pub const TAG_CHARS_MAX: usize = 256;
/// Longest principal display name (user, group, service principal, managed identity), in characters
/// (Azure's limit for an application's display name).
pub const DISPLAY_NAME_CHARS_MAX: usize = 120;
/// Longest object (secret, key, certificate) name, in characters.
pub const OBJECT_NAME_CHARS_MAX: usize = 127;
/// Shortest and longest vault name, in characters.
pub const VAULT_NAME_CHARS_MIN: usize = 3;
pub const VAULT_NAME_CHARS_MAX: usize = 24;
/// Longest region name (a node's failure domain, `arcad serve --region`), in characters.
pub const REGION_NAME_CHARS_MAX: usize = 32;
/// Soft-delete retention bounds and default, in days.
pub const RETENTION_DAYS_MIN: u32 = 7;
pub const RETENTION_DAYS_MAX: u32 = 90;
pub const RETENTION_DAYS_DEFAULT: u32 = 90;
/// Default and largest page of a list call, in items.
pub const PAGE_SIZE_DEFAULT: u32 = 25;
pub const PAGE_SIZE_MAX: u32 = 1000;
/// Most versions one secret backup may carry (Azure refuses backups above 500 versions).
pub const BACKUP_VERSIONS_MAX: usize = 500;
/// Largest backup blob accepted by restore, in bytes (500 versions of the largest value, plus framing).
pub const BACKUP_BLOB_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Seconds in one day, for retention arithmetic.
pub const SECONDS_PER_DAY: i64 = 86_400;
/// Largest plaintext, ciphertext, digest or EdDSA message one crypto operation accepts, in bytes.
pub const CRYPTO_INPUT_BYTES_MAX: usize = 64 * 1024;
/// Most items one batch crypto call may carry.
pub const CRYPTO_BATCH_ITEMS_MAX: usize = 100;
/// Fewest and most random bytes one `GetRandomBytes` call returns (Azure: 1-128).
pub const RANDOM_BYTES_MIN: u32 = 1;
pub const RANDOM_BYTES_MAX: u32 = 128;
/// Largest JWK or BYOK blob accepted by import, in bytes of JSON.
pub const KEY_IMPORT_BYTES_MAX: usize = 64 * 1024;
/// Most versions one key may have (Managed HSM's limit); create, import and rotate refuse more.
pub const KEY_VERSIONS_MAX: usize = 100;
/// Validity-window skew allowed for key operations, in seconds (Azure allows a few minutes).
pub const KEY_CLOCK_SKEW_S: i64 = 300;
/// Shortest, default and longest lifetime of a join token, in seconds.
pub const JOIN_TOKEN_TTL_S_MIN: i64 = 60;
pub const JOIN_TOKEN_TTL_S_DEFAULT: i64 = 15 * 60;
pub const JOIN_TOKEN_TTL_S_MAX: i64 = 24 * 3600;
/// How far a forwarded request's send time may be from the leader's clock, in seconds; older (or
/// later) envelopes are refused as replays.
pub const FORWARD_ENVELOPE_AGE_S_MAX: i64 = 30;
/// Most forwarded requests a leader remembers for replay detection (the oldest is forgotten first).
pub const FORWARD_REPLAY_ENTRIES_MAX: usize = 262_144;
/// An unseal in progress that has had no share for this long, in seconds, may be replaced by a new one.
pub const UNSEAL_ATTEMPT_IDLE_S_MAX: u64 = 600;
/// Unseal requests one node takes, per second on average and in one burst.
pub const UNSEAL_REQUESTS_PER_S_MAX: u32 = 10;
pub const UNSEAL_REQUESTS_BURST_MAX: u32 = 20;
/// Largest request message each API call accepts, in bytes, checked on the message's length prefix
/// before it is read: most calls carry only names and options.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 8 * 1024;
/// Calls that carry tags (15 tags of 256-character names and values, 4 bytes a character at most).
pub const TAGGED_REQUEST_BYTES_MAX: usize = 40 * 1024;
/// `SetSecret`: a value at its limit, a content type and tags.
pub const SET_SECRET_REQUEST_BYTES_MAX: usize = SECRET_VALUE_BYTES_MAX + TAGGED_REQUEST_BYTES_MAX + 8 * 1024;
/// `ImportKey`: key material at its limit, and tags.
pub const IMPORT_KEY_REQUEST_BYTES_MAX: usize = KEY_IMPORT_BYTES_MAX + TAGGED_REQUEST_BYTES_MAX;
/// One crypto call: up to four byte fields (ciphertext, iv, aad, tag) at their limit.
pub const CRYPTO_REQUEST_BYTES_MAX: usize = 4 * CRYPTO_INPUT_BYTES_MAX + 8 * 1024;
/// A restore: a backup blob at its limit.
pub const RESTORE_REQUEST_BYTES_MAX: usize = BACKUP_BLOB_BYTES_MAX + 8 * 1024;
/// A batch crypto call, and the largest message any API call accepts.
pub const BATCH_REQUEST_BYTES_MAX: usize = 16 * 1024 * 1024 + 64 * 1024;
/// Longest bearer token looked at, in bytes (a root token is 37, an access token about 500): a longer
/// one is refused as invalid before it is parsed or hashed.
pub const BEARER_TOKEN_BYTES_MAX: usize = 4096;
/// Default and longest lifetime of an access token from the token endpoint, in seconds.
pub const ACCESS_TOKEN_LIFETIME_S_DEFAULT: i64 = 3600;
pub const ACCESS_TOKEN_LIFETIME_S_MAX: i64 = 24 * 3600;
/// How far an access token's times may be from a node's clock and still be honoured, in seconds.
pub const ACCESS_TOKEN_CLOCK_SKEW_S: i64 = 60;
/// Longest a service principal's secret or certificate may be valid, in seconds (two years, as Azure).
pub const CREDENTIAL_LIFETIME_S_MAX: i64 = 2 * 365 * SECONDS_PER_DAY;
/// Default lifetime of a new credential, in seconds (one year, as `az ad sp credential reset`).
pub const CREDENTIAL_LIFETIME_S_DEFAULT: i64 = 365 * SECONDS_PER_DAY;
/// Client secrets (and, apart, certificates) one service principal may hold unexpired at once: two,
/// so a new one can be rolled out before the old one is removed.
pub const CREDENTIALS_PER_KIND_MAX: usize = 2;
/// How long an agent's enrollment secret (from `arca agent create`) is valid, in seconds: it only
/// serves to register the agent's first certificate, which removes it.
pub const AGENT_ENROLLMENT_SECRET_LIFETIME_S: i64 = 24 * 3600;
/// How long Arca honours an agent's certificate, in seconds: by default, at least and at most. The
/// agent registers a new one when half of it has passed.
pub const AGENT_CERTIFICATE_LIFETIME_S_DEFAULT: i64 = 24 * 3600;
pub const AGENT_CERTIFICATE_LIFETIME_S_MIN: i64 = 10;
pub const AGENT_CERTIFICATE_LIFETIME_S_MAX: i64 = 30 * SECONDS_PER_DAY;
/// Agent bindings one managed identity may hold.
pub const AGENT_BINDINGS_PER_IDENTITY_MAX: usize = 100;
/// Longest executable path a binding may name, in bytes (Linux's PATH_MAX).
pub const EXECUTABLE_PATH_BYTES_MAX: usize = 4096;
/// Federated credentials one principal may hold (Azure's limit), the longest issuer, subject or
/// audience one names, in characters, and the largest JWKS one keeps, in bytes.
pub const FEDERATED_CREDENTIALS_MAX: usize = 20;
/// Claims one federated credential may bind beside issuer, subject and audience.
pub const BOUND_CLAIMS_MAX: usize = 16;
/// Values one bound claim may accept.
pub const BOUND_CLAIM_VALUES_MAX: usize = 32;
/// The longest name of a bound claim (or JSON pointer to it), in characters.
pub const BOUND_CLAIM_NAME_CHARS_MAX: usize = 256;
/// All the bound claims of one credential, names and values, in bytes (UTF-8).
pub const BOUND_CLAIMS_BYTES_MAX: usize = 8 * 1024;
/// Arca groups one access token may carry from the `groups` claim of a user's sign-in (each is a
/// UUID in the token, which is at most `BEARER_TOKEN_BYTES_MAX`).
pub const EXTERNAL_GROUPS_PER_TOKEN_MAX: usize = 32;
/// The longest-lived access token a person's sign-in (an ID token) gets, in seconds: the groups its
/// provider says they are in are asked again at least this often.
pub const USER_ACCESS_TOKEN_LIFETIME_S_MAX: i64 = 3600;
pub const FEDERATED_FIELD_CHARS_MAX: usize = 600;
pub const FEDERATED_JWKS_BYTES_MAX: usize = 16 * 1024;
/// A federated credential request: a JWKS at its limit and the other fields.
pub const FEDERATED_CREDENTIAL_REQUEST_BYTES_MAX: usize = FEDERATED_JWKS_BYTES_MAX + BOUND_CLAIMS_BYTES_MAX + 8 * 1024;
/// The longest-lived Kubernetes service account token taken as proof of a pod (`exp - iat`), in
/// seconds: projected tokens live an hour by default and at most a day here.
pub const SERVICE_ACCOUNT_TOKEN_LIFETIME_S_MAX: i64 = 24 * 3600;
/// The largest `BindManagedIdentity` request: a service account issuer's JWKS and the rest.
pub const MANAGED_IDENTITY_BIND_REQUEST_BYTES_MAX: usize = FEDERATED_JWKS_BYTES_MAX + 8 * 1024;
/// The largest `IssueManagedIdentityToken` request: a workload's service account token, its
/// executable's path, and the rest.
pub const MANAGED_IDENTITY_TOKEN_REQUEST_BYTES_MAX: usize =
    CLIENT_ASSERTION_BYTES_MAX + EXECUTABLE_PATH_BYTES_MAX + 4 * 1024;
/// Bytes of entropy in a client secret Arca generates (256 bits).
pub const CLIENT_SECRET_BYTES: usize = 32;
/// Members one group may have, and groups one principal may be a member of (every request of a
/// principal looks up the assignments of each of its groups).
pub const GROUP_MEMBERS_MAX: usize = 10_000;
pub const GROUPS_PER_PRINCIPAL_MAX: usize = 100;
/// Role assignments one principal may hold directly.
pub const ASSIGNMENTS_PER_PRINCIPAL_MAX: usize = 500;
/// Custom roles one cluster may define (Azure's limit per tenant).
pub const CUSTOM_ROLES_MAX: usize = 5000;
/// Token requests one node takes, per second on average and in one burst (the endpoint needs no
/// token, and each request costs a read barrier).
pub const TOKEN_REQUESTS_PER_S_MAX: u32 = 200;
pub const TOKEN_REQUESTS_BURST_MAX: u32 = 400;
/// Longest a client assertion may be valid, in seconds (RFC 7523 clients use a few minutes).
pub const CLIENT_ASSERTION_LIFETIME_S_MAX: i64 = 600;
/// Largest client assertion (a JWT a client signed) the token endpoint reads, in bytes.
pub const CLIENT_ASSERTION_BYTES_MAX: usize = 8 * 1024;
/// A token request: a client assertion (or secret) at its limit, and the other fields.
pub const TOKEN_REQUEST_BYTES_MAX: usize = CLIENT_ASSERTION_BYTES_MAX + 4 * 1024;
/// A credential reset: a PEM certificate of up to 16 KiB of DER, and the other fields.
pub const CREDENTIAL_REQUEST_BYTES_MAX: usize = 24 * 1024;
/// Largest custom role definition accepted, in bytes of JSON.
pub const ROLE_DEFINITION_BYTES_MAX: usize = 64 * 1024;
/// How long the outcome of a change made with a client request id is kept, in seconds: a retry with
/// the same id within it gets that outcome instead of acting twice.
pub const REQUEST_ID_WINDOW_S: i64 = 600;
/// Longest client request id (`x-arca-request-id`), in characters of `[A-Za-z0-9._-]`.
pub const REQUEST_ID_CHARS_MAX: usize = 64;
/// Most expired request records one sweep deletes.
pub const REQUEST_ID_SWEEP_BATCH_MAX: usize = 1000;
/// Writers holding or waiting for their turn at one secret or key on the leader (writes to one
/// object are decided one at a time); more are refused as throttled (`RESOURCE_EXHAUSTED`, to retry after a pause). Below the HTTP/2
/// streams of one connection, so a follower's forwards parked on one hot object leave room for the
/// rest.
pub const OBJECT_WRITERS_MAX: usize = 128;
/// Longest a write waits for its turn at one object on the leader, in milliseconds, before it is
/// refused as throttled (nothing was proposed, so a retry is safe).
pub const OBJECT_TURN_WAIT_MS: u64 = 5_000;
/// Sets of one secret the leader decides together and proposes as one Raft entry: the writer whose
/// turn it is takes the sets offered by writers waiting behind it, up to this many with its own.
pub const SET_BATCH_MAX: usize = 64;
/// Bytes of values, content types and tags the sets of one batch may carry together, its first
/// set's included (a first set larger than this goes alone, as any set did before batching). An
/// entry holds each value twice (the version record and the stored outcome of its request id), so
/// a batch's entry stays near the size of one set at its limits, and a follower catching up on a
/// full page of entries (openraft sends up to 300) stays under the cluster's message limit.
pub const SET_BATCH_BYTES_MAX: usize = 32 * 1024;
/// Most versions one secret may have. Every version stays readable and listed; the limit bounds what
/// listing them reads (the header holds only the latest version and a count, so a set writes as
/// much at the last version as at the first). Backups still carry at most [`BACKUP_VERSIONS_MAX`].
pub const SECRET_VERSIONS_MAX: usize = 10_000;
/// Longest duration a rotation policy may name (expiry time, trigger), in seconds: 100 years.
pub const POLICY_DURATION_S_MAX: i64 = 100 * 366 * SECONDS_PER_DAY;
/// TCP connections one listener serves at once (the API's, and the cluster listener's); more are
/// closed as they arrive.
pub const API_CONNECTIONS_MAX: usize = 4096;
pub const CLUSTER_CONNECTIONS_MAX: usize = 256;
/// Of the cluster listener's connections, how many peers without a certificate from the cluster CA
/// (joining nodes, strangers) may hold at once.
pub const CLUSTER_STRANGER_CONNECTIONS_MAX: usize = 16;
/// TLS handshakes in progress on one listener at once; a new connection beyond this evicts the
/// oldest handshake, so connections that never finish theirs cannot starve those that do.
pub const TLS_HANDSHAKES_IN_FLIGHT_MAX: usize = 128;
/// Bound on one TLS handshake and the HTTP/2 preface after it, in milliseconds.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// Concurrent HTTP/2 streams (calls) one connection may have open.
pub const HTTP2_STREAMS_PER_CONNECTION_MAX: u32 = 256;
/// Longest any one call may run on a node, in seconds (a join waits for the new node to catch up).
pub const REQUEST_DURATION_S_MAX: u64 = 330;
/// Largest snapshot a node accepts, in bytes, and how many it receives at once. A snapshot being
/// received is spooled to the data dir, not held in memory.
pub const SNAPSHOT_BYTES_MAX: u64 = 1024 * 1024 * 1024;
pub const SNAPSHOT_INSTALLS_IN_FLIGHT_MAX: usize = 1;
/// Largest key, value or applied metadata one snapshot record may carry, in bytes: checked on its
/// length before it is read. Above any record a change can write, since no change is larger than
/// the largest request ([`BATCH_REQUEST_BYTES_MAX`]) and no record grows with its object's
/// versions.
pub const SNAPSHOT_RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Most IP rules one vault's network rules may list (Azure's limit).
pub const NETWORK_IP_RULES_MAX: usize = 1000;
/// Largest SetVaultNetworkRules request, in bytes: the most rules, each at most 64 bytes.
pub const NETWORK_RULES_REQUEST_BYTES_MAX: usize = NETWORK_IP_RULES_MAX * 64 + REQUEST_BYTES_MAX_DEFAULT;
