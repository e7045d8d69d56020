//! Who is asking: the local process on the other end of a connection, as the kernel (not the
//! process) says.
//!
//! - On the Unix socket, the peer's credentials (`SO_PEERCRED`: uid, gid and pid as they were when
//!   it connected), and the executable `/proc/PID/exe` names.
//! - On the loopback TCP endpoint, the uid that owns the connecting socket, from `/proc/net/tcp` (or
//!   `tcp6`); no pid, so no executable.
//!
//! The uid is the boundary. The executable narrows which of one user's programs may ask, but a
//! process of the same uid can defeat it (it can connect, fork, and exec the named program, or trace
//! it), so a binding should always name the uid too; and the agent sees other users' executables
//! only when it runs as root (or with `CAP_SYS_PTRACE`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A process asking for a token, as the agent attests it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub uid: u32,
    pub gid: u32,
    /// 0 when unknown (a TCP caller).
    pub pid: u32,
    /// What `/proc/PID/exe` names, when the agent may read it.
    pub executable: Option<String>,
}

/// The workload on the other end of a Unix socket connection.
pub fn unix_peer(stream: &tokio::net::UnixStream) -> std::io::Result<Workload> {
    let cred = stream.peer_cred()?;
    let pid = cred.pid().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
    let executable = (pid != 0).then(|| executable_of(pid, cred.uid())).flatten();
    Ok(Workload { uid: cred.uid(), gid: cred.gid(), pid, executable })
}

/// The executable of `pid`, if that process still runs as `uid` (so a pid reused by another user's
/// process since it connected does not lend its executable).
fn executable_of(pid: u32, uid: u32) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let real_uid = status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?;
    (real_uid.parse::<u32>().ok()? == uid).then(|| exe.to_str().map(str::to_owned)).flatten()
}

/// The workload that owns the TCP connection from `peer` to `local` (this agent's listening
/// address), from the kernel's socket tables. Only loopback callers are served.
pub fn tcp_peer(local: SocketAddr, peer: SocketAddr) -> std::io::Result<Workload> {
    if !peer.ip().is_loopback() {
        return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "only local callers are served"));
    }
    let table = if peer.is_ipv4() { "/proc/net/tcp" } else { "/proc/net/tcp6" };
    let text = std::fs::read_to_string(table)?;
    let uid = socket_owner(&text, peer, local).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the connecting socket is not in the kernel's table")
    })?;
    Ok(Workload { uid, gid: 0, pid: 0, executable: None })
}

/// The uid owning the socket whose local address is `from` and remote address is `to`, in the text of
/// `/proc/net/tcp` or `/proc/net/tcp6`.
pub fn socket_owner(table: &str, from: SocketAddr, to: SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, state, uid) = (fields.get(1)?, fields.get(2)?, fields.get(3)?, fields.get(7)?);
        // Only an established connection (a closing one's owner is no longer known).
        let established = *state == "01";
        (established && parse_address(local)? == from && parse_address(remote)? == to)
            .then(|| uid.parse().ok())
            .flatten()
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the address as the kernel prints it,
/// each 32-bit word in the machine's byte order, the port in hex.
fn parse_address(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word =
        |i: usize| -> Option<[u8; 4]> { Some(u32::from_str_radix(ip.get(8 * i..8 * i + 8)?, 16).ok()?.to_ne_bytes()) };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[4 * i..4 * i + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_table_names_the_owner_of_a_connection() {
        // As Linux prints them on a little-endian machine.
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0\n\
           1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001        0 2 1 0\n\
           2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0\n";
        if cfg!(target_endian = "little") {
            let agent: SocketAddr = "127.0.0.1:8080".parse().unwrap();
            let caller: SocketAddr = "127.0.0.1:50000".parse().unwrap();
            assert_eq!(socket_owner(table, caller, agent), Some(1001));
            assert_eq!(socket_owner(table, agent, caller), Some(0));
            assert_eq!(socket_owner(table, "127.0.0.1:50001".parse().unwrap(), agent), None);
        }
        assert_eq!(
            socket_owner(
                "header\n 0: garbage\n 1: 0100007F:ZZZZ 0 0 0 0 0 0\n",
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap()
            ),
            None
        );
        assert_eq!(
            parse_address("00000000000000000000000001000000:0050").map(|a| a.to_string()).as_deref(),
            cfg!(target_endian = "little").then_some("[::1]:80")
        );
    }

    #[tokio::test]
    async fn a_unix_peer_is_this_process_with_its_executable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let _client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let w = unix_peer(&server).unwrap();
        assert_eq!(w.pid, std::process::id());
        let me = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(w.executable.as_deref(), me.to_str());
    }

    #[tokio::test]
    async fn a_tcp_peer_is_found_in_the_kernel_table() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(local).await.unwrap();
        let (_server, peer) = listener.accept().await.unwrap();
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Uid:").map(|r| r.split_whitespace().next().unwrap().parse::<u32>().unwrap()))
            .unwrap();
        assert_eq!(tcp_peer(local, peer).unwrap().uid, uid);
        assert!(tcp_peer(local, "10.0.0.1:5".parse().unwrap()).is_err());
    }
}
