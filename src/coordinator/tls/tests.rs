use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::{CertificateError, ClientConnection, ServerConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::*;
use crate::api::tls::*;
use crate::api::{ApiError, Client};
use crate::coordinator::pki::Pki;

const TIMEOUT: Duration = Duration::from_secs(10);
const MISMATCH: &str = "the coordinator's CA does not match the join token";

fn pki_in(dir: &Path) -> Pki {
    Pki::load_or_create(dir, &[]).unwrap()
}

/// Accepts one connection, answers "ping" with "pong", and reports the server's view.
fn serve_once(config: Arc<ServerConfig>) -> (u16, JoinHandle<io::Result<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (socket, _) = listener.accept()?;
        socket.set_read_timeout(Some(TIMEOUT))?;
        socket.set_write_timeout(Some(TIMEOUT))?;
        let connection = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(connection, socket);
        let mut line = String::new();
        BufReader::new(&mut stream).read_line(&mut line)?;
        stream.write_all(b"pong\n")?;
        stream.flush()?;
        Ok(line)
    });
    (port, server)
}

fn ping(stream: &mut StreamOwned<ClientConnection, TcpStream>) -> String {
    stream.write_all(b"ping\n").unwrap();
    stream.flush().unwrap();
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn a_client_trusting_the_ca_completes_the_handshake() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_in(temp.path());
    let (port, server) = serve_once(server_config(&pki).unwrap());
    let config = client_config_trusting(pki.ca_pem()).unwrap();
    let mut stream = connect("127.0.0.1", port, config, TIMEOUT).unwrap();
    assert_eq!(ping(&mut stream), "pong\n");
    assert_eq!(server.join().unwrap().unwrap(), "ping\n");
}

#[test]
fn the_server_presents_its_certificate_then_the_ca() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_in(temp.path());
    let (port, server) = serve_once(server_config(&pki).unwrap());
    let config = client_config_trusting(pki.ca_pem()).unwrap();
    let mut stream = connect("127.0.0.1", port, config, TIMEOUT).unwrap();
    let chain = stream.conn.peer_certificates().unwrap().to_vec();
    assert_eq!(chain, [pki.server_cert_der().clone(), pki.ca_der().clone()]);
    assert_eq!(ping(&mut stream), "pong\n");
    server.join().unwrap().unwrap();
}

#[test]
fn a_client_trusting_another_ca_is_refused() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let (server_pki, other_pki) = (pki_in(ours.path()), pki_in(theirs.path()));
    let (port, server) = serve_once(server_config(&server_pki).unwrap());
    let config = client_config_trusting(other_pki.ca_pem()).unwrap();
    let err = connect("127.0.0.1", port, config, TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(
        err.to_string()
            .contains("not signed by the trusted coordinator CA"),
        "{err}"
    );
    let inner = err
        .get_ref()
        .unwrap()
        .downcast_ref::<HandshakeError>()
        .unwrap();
    assert_eq!(
        inner.source,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    assert!(server.join().unwrap().is_err());
}

#[test]
fn a_pinned_client_accepts_the_matching_ca_and_exposes_it() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_in(temp.path());
    let (port, server) = serve_once(server_config(&pki).unwrap());
    let (config, pinned) = client_config_pinned(&pki.ca_hash().to_uppercase()).unwrap();
    assert!(pinned.der().is_none());
    let mut stream = connect("127.0.0.1", port, config, TIMEOUT).unwrap();
    assert_eq!(ping(&mut stream), "pong\n");
    server.join().unwrap().unwrap();

    assert_eq!(pinned.der().as_ref(), Some(pki.ca_der()));
    let pem = pinned.pem().unwrap();
    assert_eq!(
        &CertificateDer::from_pem_slice(pem.as_bytes()).unwrap(),
        pki.ca_der()
    );
    // The saved PEM is enough to trust the coordinator from then on.
    let (port, server) = serve_once(server_config(&pki).unwrap());
    let trusting = client_config_trusting(&pem).unwrap();
    let mut stream = connect("localhost", port, trusting, TIMEOUT).unwrap();
    assert_eq!(ping(&mut stream), "pong\n");
    server.join().unwrap().unwrap();
}

#[test]
fn a_pinned_client_refuses_a_different_ca() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let (server_pki, other_pki) = (pki_in(ours.path()), pki_in(theirs.path()));
    let (port, server) = serve_once(server_config(&server_pki).unwrap());
    let (config, pinned) = client_config_pinned(other_pki.ca_hash()).unwrap();
    let err = connect("127.0.0.1", port, config, TIMEOUT).unwrap_err();
    assert_eq!(err.to_string(), MISMATCH);
    assert!(pinned.der().is_none());
    assert!(server.join().unwrap().is_err());
}

#[test]
fn a_pinned_client_refuses_a_wrong_hash() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_in(temp.path());
    let (port, server) = serve_once(server_config(&pki).unwrap());
    let (config, _) = client_config_pinned(&"0".repeat(64)).unwrap();
    let err = connect("127.0.0.1", port, config, TIMEOUT).unwrap_err();
    assert!(err.to_string().contains(MISMATCH), "{err}");
    assert!(server.join().unwrap().is_err());
}

#[test]
fn a_pinned_client_refuses_the_right_ca_beside_a_certificate_it_did_not_sign() {
    // An impostor can copy the public CA certificate into its chain; its own
    // certificate must still be signed by that CA.
    let real = tempfile::tempdir().unwrap();
    let impostor = tempfile::tempdir().unwrap();
    let (real_pki, impostor_pki) = (pki_in(real.path()), pki_in(impostor.path()));
    let chain = vec![
        impostor_pki.server_cert_der().clone(),
        real_pki.ca_der().clone(),
    ];
    let impostor_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, impostor_pki.server_key_der())
        .unwrap();
    let (port, server) = serve_once(Arc::new(impostor_config));
    let (config, pinned) = client_config_pinned(real_pki.ca_hash()).unwrap();
    let err = connect("127.0.0.1", port, config, TIMEOUT).unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(pinned.der().is_none());
    assert!(server.join().unwrap().is_err());
}

#[test]
fn a_pinned_client_still_checks_the_server_name() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_in(temp.path());
    let (port, server) = serve_once(server_config(&pki).unwrap());
    let (config, pinned) = client_config_pinned(pki.ca_hash()).unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let name = ServerName::try_from("not-the-coordinator.example").unwrap();
    let err = handshake(socket, name, config).unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert!(pinned.der().is_none());
    assert!(server.join().unwrap().is_err());
}

#[test]
fn the_async_acceptor_serves_a_blocking_client() {
    use smol::io::{AsyncReadExt, AsyncWriteExt};

    let temp = tempfile::tempdir().unwrap();
    let pki = pki_in(temp.path());
    let acceptor = futures_rustls::TlsAcceptor::from(server_config(&pki).unwrap());
    let listener = smol::Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
    let port = listener.get_ref().local_addr().unwrap().port();
    let client_config = client_config_trusting(pki.ca_pem()).unwrap();
    let client = thread::spawn(move || {
        let mut stream = connect("127.0.0.1", port, client_config, TIMEOUT)?;
        stream.write_all(b"ping\n")?;
        stream.flush()?;
        let mut reply = [0u8; 5];
        stream.read_exact(&mut reply)?;
        io::Result::Ok(reply)
    });
    let received = smol::block_on(async {
        let (socket, _) = listener.accept().await?;
        let mut tls = acceptor.accept(socket).await?;
        let mut request = [0u8; 5];
        tls.read_exact(&mut request).await?;
        tls.write_all(b"pong\n").await?;
        tls.flush().await?;
        io::Result::Ok(request)
    })
    .unwrap();
    assert_eq!(&received, b"ping\n");
    assert_eq!(&client.join().unwrap().unwrap(), b"pong\n");
}

#[test]
fn client_config_trusting_rejects_bundles_without_a_certificate() {
    assert!(matches!(
        client_config_trusting(""),
        Err(TlsError::NoCaCertificate)
    ));
    let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        client_config_trusting(broken),
        Err(TlsError::BadCaPem { .. })
    ));
    let not_a_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        client_config_trusting(not_a_cert),
        Err(TlsError::BadCaCertificate { .. })
    ));
}

/// Serves HTTP/1.1 on the one connection it accepts (a client that reconnects is
/// refused), keeping it open and answering each request with `{}` once the delay its
/// path names (`/after/<ms>`) has passed. Returns the paths requested, in order.
fn serve_one_kept_connection(config: Arc<ServerConfig>) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        drop(listener);
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        let connection = ServerConnection::new(config).unwrap();
        let mut stream = StreamOwned::new(connection, socket);
        let mut requested = Vec::new();
        loop {
            // Requests are not pipelined: nothing past the head is waiting.
            let mut reader = BufReader::new(&mut stream);
            let mut request_line = String::new();
            // The client closing (without close_notify) ends the connection.
            if !matches!(reader.read_line(&mut request_line), Ok(n) if n > 0) {
                break;
            }
            let mut header = String::from("-");
            while !matches!(header.as_str(), "\r\n" | "") {
                header.clear();
                reader.read_line(&mut header).unwrap();
            }
            let path = request_line.split(' ').nth(1).unwrap().to_owned();
            let delay = path.strip_prefix("/after/").unwrap().parse().unwrap();
            requested.push(path);
            thread::sleep(Duration::from_millis(delay));
            let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}";
            if stream
                .write_all(answer)
                .and_then(|()| stream.flush())
                .is_err()
            {
                break;
            }
        }
        requested
    });
    (port, server)
}

#[test]
fn a_kept_connection_takes_the_timeout_of_each_request_it_carries() {
    let temp = tempfile::tempdir().unwrap();
    let pki = pki_in(temp.path());
    let (port, server) = serve_one_kept_connection(server_config(&pki).unwrap());
    let url = format!("https://127.0.0.1:{port}");
    let config = client_config_trusting(pki.ca_pem()).unwrap();
    // An agent's status report opens the connection, with a short timeout...
    let report = Client::https(&url, config, None, Duration::from_millis(200)).unwrap();
    report.request("GET", "/after/0", None).unwrap();
    // ...and its next long poll, which the server holds for longer than that, goes over
    // the same connection (a reconnect would be refused) and gets its answer.
    let poll = report.clone().with_timeout(TIMEOUT);
    let (status, _) = poll.request("GET", "/after/1000", None).unwrap();
    assert_eq!(status, 200);
    // The report's own timeout holds again for its next request: the kept connection
    // times out, and the client does not wait for a hung coordinator a second time on a
    // new connection.
    let err = report.request("GET", "/after/1000", None).unwrap_err();
    assert!(
        matches!(&err, ApiError::Io { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock),
        "{err}"
    );
    drop((report, poll));
    assert_eq!(
        server.join().unwrap(),
        ["/after/0", "/after/1000", "/after/1000"]
    );
}
