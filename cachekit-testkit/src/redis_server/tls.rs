//! Throwaway certificates made with the `openssl` CLI.
//!
//! The CLI rather than a Rust crate: it is what CI installs anyway for
//! redis-server, and it keeps a TLS stack out of the harness's own
//! dependencies so it cannot mask a bug in the client under test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Extension sections for each kind of certificate. Explicit key usages
/// matter: webpki (rustls) rejects a CA without `keyCertSign` and leaf
/// certificates whose extended key usage does not match their role.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = cachekit-testkit

[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// Paths of every generated PEM file.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub(crate) ca_cert: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    pub(crate) other_ca_cert: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
            "the `openssl` command is not installed; TLS test servers need it to make \
             certificates (install it with `sudo apt-get install -y openssl`)"
        ),
        Err(err) => panic!("could not run `openssl`: {err}"),
    };
    if !output.status.success() {
        panic!(
            "`openssl {}` failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Runs openssl with a fixed whitespace-separated part and some variable arguments.
fn openssl_with(dir: &Path, fixed: &str, variable: &[&str]) {
    let mut args: Vec<&str> = fixed.split_whitespace().collect();
    args.extend_from_slice(variable);
    openssl(dir, &args);
}

const NEW_EC_KEY: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

/// A fresh private key and self-signed CA certificate.
fn make_ca(dir: &Path, name: &str, common_name: &str) {
    openssl_with(
        dir,
        &format!("req -x509 -new {NEW_EC_KEY} -days 3650 -config openssl.cnf -extensions ca_ext"),
        &[
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN={common_name}"),
        ],
    );
}

/// A fresh key and a certificate for it signed by the `ca` CA.
fn make_leaf(dir: &Path, name: &str, common_name: &str, extensions: &str, serial: u64) {
    let csr = format!("{name}.csr");
    openssl_with(
        dir,
        &format!("req -new {NEW_EC_KEY} -config openssl.cnf"),
        &[
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &csr,
            "-subj",
            &format!("/CN={common_name}"),
        ],
    );
    openssl_with(
        dir,
        "x509 -req -CA ca.crt -CAkey ca.key -days 3650 -extfile openssl.cnf",
        &[
            "-in",
            &csr,
            "-out",
            &format!("{name}.crt"),
            "-set_serial",
            &serial.to_string(),
            "-extensions",
            extensions,
        ],
    );
}

/// Writes a CA, a server certificate for 127.0.0.1/localhost, a client
/// certificate (both signed by the CA) and an unrelated second CA into `dir`.
///
/// Panics with openssl's output when a step fails.
pub(crate) fn generate(dir: &Path) -> TlsFiles {
    if let Err(err) = std::fs::write(dir.join("openssl.cnf"), OPENSSL_CONFIG) {
        panic!(
            "could not write {}: {err}",
            dir.join("openssl.cnf").display()
        );
    }
    // Serials only need to differ between certificates of one CA, but making
    // them differ between runs too avoids confusing any client-side cache.
    let base = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| {
        u64::try_from(d.as_micros() & 0xffff_ffff_ffff).unwrap_or(1)
    });
    make_ca(dir, "ca", "cachekit-testkit CA");
    make_ca(dir, "other-ca", "cachekit-testkit unrelated CA");
    make_leaf(dir, "server", "localhost", "server_ext", base * 2 + 1);
    make_leaf(
        dir,
        "client",
        "cachekit-testkit client",
        "client_ext",
        base * 2 + 2,
    );
    TlsFiles {
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
        other_ca_cert: dir.join("other-ca.crt"),
    }
}
