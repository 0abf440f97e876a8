use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::KeyPair;

use super::*;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn covers(pki: &Pki, name: &str, at: SystemTime) -> bool {
    let names = [SubjectName::parse(name).unwrap()];
    check_server_cert(pki.ca_der(), pki.server_cert_der(), &names, at).is_ok()
}

#[test]
fn first_start_creates_the_ca_and_server_files_with_private_keys() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("state");
    let pki = Pki::load_or_create(&dir, &[]).unwrap();

    assert_eq!(mode_of(&dir), 0o700);
    assert_eq!(mode_of(&dir.join("ca.key")), 0o600);
    assert_eq!(mode_of(&dir.join("server.key")), 0o600);
    assert_eq!(mode_of(&dir.join("ca.crt")), 0o644);
    assert_eq!(mode_of(&dir.join("server.crt")), 0o644);
    let mut entries: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, ["ca.crt", "ca.key", "server.crt", "server.key"]);

    let ca_pem = fs::read_to_string(dir.join("ca.crt")).unwrap();
    assert_eq!(pki.ca_pem(), ca_pem);
    let from_pem = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
    assert_eq!(&from_pem, pki.ca_der());
    assert_eq!(pki.ca_hash(), sha256_hex(pki.ca_der()));
    assert_eq!(pki.ca_hash().len(), 64);
}

#[test]
fn server_cert_covers_loopback_names_and_is_valid_for_about_a_year() {
    let temp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(temp.path(), &[]).unwrap();
    let now = SystemTime::now();
    for name in ["localhost", "127.0.0.1", "::1"] {
        assert!(covers(&pki, name, now), "{name} not covered");
    }
    assert!(!covers(&pki, "example.com", now));
    assert!(pki.server_names().iter().any(|name| name == "localhost"));
    let in_eleven_months = now + Duration::from_secs(330 * 24 * 60 * 60);
    let in_thirteen_months = now + Duration::from_secs(395 * 24 * 60 * 60);
    assert!(covers(&pki, "localhost", in_eleven_months));
    assert!(!covers(&pki, "localhost", in_thirteen_months));
}

#[test]
fn server_cert_covers_the_hostname_when_it_is_a_dns_name() {
    let temp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(temp.path(), &[]).unwrap();
    let host = nix::unistd::gethostname().unwrap();
    let host = host.to_str().unwrap().to_ascii_lowercase();
    if DnsName::try_from(host.as_str()).is_ok() {
        assert!(covers(&pki, &host, SystemTime::now()));
    }
}

#[test]
fn second_start_reuses_the_ca_and_the_server_cert() {
    let temp = tempfile::tempdir().unwrap();
    let first = Pki::load_or_create(temp.path(), &[]).unwrap();
    let second = Pki::load_or_create(temp.path(), &[]).unwrap();
    assert_eq!(first.ca_der(), second.ca_der());
    assert_eq!(first.server_cert_der(), second.server_cert_der());
    assert_eq!(first.server_key_der(), second.server_key_der());
}

#[test]
fn a_new_extra_name_reissues_the_server_cert_from_the_same_ca() {
    let temp = tempfile::tempdir().unwrap();
    let first = Pki::load_or_create(temp.path(), &[]).unwrap();
    let extra = vec!["Coordinator.Example".to_string(), "192.0.2.10".to_string()];
    let second = Pki::load_or_create(temp.path(), &extra).unwrap();
    assert_eq!(first.ca_hash(), second.ca_hash());
    assert_ne!(first.server_cert_der(), second.server_cert_der());
    let now = SystemTime::now();
    assert!(covers(&second, "coordinator.example", now));
    assert!(covers(&second, "192.0.2.10", now));
    assert!(covers(&second, "localhost", now));
    // The same names again: nothing to re-issue.
    let third = Pki::load_or_create(temp.path(), &extra).unwrap();
    assert_eq!(second.server_cert_der(), third.server_cert_der());
}

#[test]
fn a_server_cert_expiring_within_30_days_is_reissued() {
    let temp = tempfile::tempdir().unwrap();
    let first = Pki::load_or_create(temp.path(), &[]).unwrap();
    let ca_key =
        KeyPair::from_pem(&fs::read_to_string(temp.path().join("ca.key")).unwrap()).unwrap();
    let names = wanted_names(&[]).unwrap();
    let (short_lived, _) = issue_server(
        temp.path(),
        ca_key,
        &names,
        Duration::from_secs(10 * 24 * 60 * 60),
    )
    .unwrap();

    let second = Pki::load_or_create(temp.path(), &[]).unwrap();
    assert_eq!(first.ca_der(), second.ca_der());
    assert_ne!(second.server_cert_der(), &short_lived);
    let in_two_months = SystemTime::now() + Duration::from_secs(60 * 24 * 60 * 60);
    assert!(covers(&second, "localhost", in_two_months));
}

#[test]
fn an_unreadable_server_cert_is_reissued() {
    let temp = tempfile::tempdir().unwrap();
    let first = Pki::load_or_create(temp.path(), &[]).unwrap();
    fs::write(temp.path().join("server.crt"), "not a certificate").unwrap();
    let second = Pki::load_or_create(temp.path(), &[]).unwrap();
    assert_eq!(first.ca_der(), second.ca_der());
    assert!(covers(&second, "localhost", SystemTime::now()));
    let on_disk = fs::read_to_string(temp.path().join("server.crt")).unwrap();
    assert_eq!(
        &CertificateDer::from_pem_slice(on_disk.as_bytes()).unwrap(),
        second.server_cert_der()
    );
}

#[test]
fn a_key_readable_by_others_is_refused_with_its_path() {
    for key in ["ca.key", "server.key"] {
        let temp = tempfile::tempdir().unwrap();
        Pki::load_or_create(temp.path(), &[]).unwrap();
        let path = temp.path().join(key);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = Pki::load_or_create(temp.path(), &[]).unwrap_err();
        assert!(
            matches!(&err, PkiError::KeyTooOpen { path: p, mode: 0o640 } if p == &path),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}

#[test]
fn a_ca_with_a_missing_file_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    Pki::load_or_create(temp.path(), &[]).unwrap();
    fs::remove_file(temp.path().join("ca.key")).unwrap();
    let err = Pki::load_or_create(temp.path(), &[]).unwrap_err();
    assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err:?}");
    // Nothing was overwritten.
    assert!(!temp.path().join("ca.key").exists());
}

#[test]
fn a_ca_key_from_another_ca_is_refused() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    Pki::load_or_create(ours.path(), &[]).unwrap();
    Pki::load_or_create(theirs.path(), &[]).unwrap();
    fs::copy(theirs.path().join("ca.key"), ours.path().join("ca.key")).unwrap();
    let err = Pki::load_or_create(ours.path(), &[]).unwrap_err();
    assert!(matches!(err, PkiError::CaKeyMismatch { .. }), "{err:?}");
}

#[test]
fn an_invalid_extra_name_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let err = Pki::load_or_create(temp.path(), &["not a name!".to_string()]).unwrap_err();
    assert!(matches!(err, PkiError::BadName { .. }), "{err:?}");
}

#[test]
fn subject_names_parse_ips_and_lowercase_dns_names() {
    assert_eq!(
        SubjectName::parse("[::1]"),
        Some(SubjectName::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)))
    );
    assert_eq!(
        SubjectName::parse("10.0.0.1"),
        Some(SubjectName::Ip("10.0.0.1".parse().unwrap()))
    );
    assert_eq!(
        SubjectName::parse("Pi-1.Local"),
        Some(SubjectName::Dns("pi-1.local".into()))
    );
    assert_eq!(SubjectName::parse("under_score name"), None);
    assert_eq!(SubjectName::parse(""), None);
}

#[test]
fn wanted_names_have_no_duplicates_or_link_local_addresses() {
    let names = wanted_names(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    for (i, name) in names.iter().enumerate() {
        assert!(!names[i + 1..].contains(name), "{name} listed twice");
        if let SubjectName::Ip(IpAddr::V6(ip)) = name {
            assert_ne!(ip.segments()[0] & 0xffc0, 0xfe80, "{ip} is link-local");
        }
    }
    assert_eq!(names[0], SubjectName::Dns("localhost".into()));
}

#[test]
fn certificate_pem_round_trips_through_the_pem_parser() {
    let temp = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(temp.path(), &[]).unwrap();
    let pem = certificate_pem(pki.server_cert_der());
    assert!(pem.lines().all(|line| line.len() <= 64));
    let parsed = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(&parsed, pki.server_cert_der());
}
