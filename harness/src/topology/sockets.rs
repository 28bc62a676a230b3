//! Where sockets come from: a [`SocketFactory`] makes them in the right
//! network namespace ([`NsSockets`]: a host of a topology; [`HostSockets`]:
//! the caller's own), so the same client code runs on loopback or inside a
//! simulated host. A socket made in a namespace stays there wherever it is
//! used afterwards.

use std::{io, net::SocketAddr, sync::Arc};

use tokio::net::TcpSocket;

use super::Netns;

/// Creates sockets in the right network namespace.
pub trait SocketFactory: Send + Sync + std::fmt::Debug {
    /// A new, unbound TCP socket of the family of `like`.
    fn tcp_socket(&self, like: SocketAddr) -> io::Result<TcpSocket>;
}

/// Sockets in the caller's own namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSockets;

impl SocketFactory for HostSockets {
    fn tcp_socket(&self, like: SocketAddr) -> io::Result<TcpSocket> {
        if like.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
    }
}

/// Sockets created inside a namespace.
#[derive(Debug, Clone)]
pub struct NsSockets {
    /// The namespace.
    pub ns: Arc<Netns>,
}

impl NsSockets {
    /// A non-blocking socket2 socket made inside the namespace.
    pub fn raw(&self, domain: socket2::Domain, ty: socket2::Type) -> io::Result<socket2::Socket> {
        let s = self.ns.run(|| socket2::Socket::new(domain, ty, None))??;
        s.set_nonblocking(true)?;
        Ok(s)
    }

    /// A listening TCP socket on `addr` inside the namespace.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        let s = self.raw(socket2::Domain::for_address(addr), socket2::Type::STREAM)?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(128)?;
        tokio::net::TcpListener::from_std(s.into())
    }
}

impl SocketFactory for NsSockets {
    fn tcp_socket(&self, like: SocketAddr) -> io::Result<TcpSocket> {
        let s = self.raw(socket2::Domain::for_address(like), socket2::Type::STREAM)?;
        Ok(TcpSocket::from_std_stream(s.into()))
    }
}
