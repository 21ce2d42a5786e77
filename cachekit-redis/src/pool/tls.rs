//! TLS (`rediss://`), compiled with the `tls` feature: rustls through
//! redis-rs's `tokio-rustls-comp`. Without the feature, [`prepare`] refuses
//! a TLS URL with an error that names the feature.

#[cfg(not(feature = "tls"))]
pub(crate) use disabled::*;
#[cfg(feature = "tls")]
pub(crate) use enabled::*;

#[cfg(feature = "tls")]
mod enabled {
    use std::path::Path;
    use std::sync::Once;

    use cachekit_core::{Error, Result};
    use redis::cluster::ClusterClientBuilder;
    pub(crate) use redis::TlsCertificates as Certificates;
    use redis::{Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, RedisError};

    use crate::config::RedisConfig;
    use crate::errors::Target;

    /// Before the first TLS connection of a backend.
    pub(crate) fn prepare(_target: &Target) -> Result<()> {
        install_crypto_provider();
        Ok(())
    }

    /// The address of a TLS server.
    pub(crate) fn addr(host: &str, port: u16, insecure: bool) -> ConnectionAddr {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure,
            tls_params: None,
        }
    }

    /// A client that presents or trusts the configured certificates.
    pub(crate) fn client(info: ConnectionInfo, certs: &Certificates) -> Result<Client, RedisError> {
        Client::build_with_tls(info, certs.clone())
    }

    /// A cluster client that presents or trusts them.
    pub(crate) fn cluster_certs(
        builder: ClusterClientBuilder,
        certs: &Certificates,
    ) -> ClusterClientBuilder {
        builder.certs(certs.clone())
    }

    /// rustls needs one process-wide crypto provider. ring is chosen because
    /// aws-lc-rs needs cmake to build; if the application installed another
    /// provider first, that one is kept.
    fn install_crypto_provider() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
    }

    pub(crate) fn certificates(config: &RedisConfig) -> Result<Option<Certificates>> {
        let root_cert = config
            .tls_ca_file
            .as_deref()
            .map(|path| read_pem("tls_ca_file", path))
            .transpose()?;
        let client_tls = match (&config.tls_client_cert_file, &config.tls_client_key_file) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read_pem("tls_client_cert_file", cert)?,
                client_key: read_pem("tls_client_key_file", key)?,
            }),
            _ => None,
        };
        if root_cert.is_none() && client_tls.is_none() {
            return Ok(None);
        }
        Ok(Some(Certificates {
            client_tls,
            root_cert,
        }))
    }

    fn read_pem(field: &str, path: &Path) -> Result<Vec<u8>> {
        let bytes = std::fs::read(path).map_err(|err| {
            Error::config(field, format!("cannot read {}: {err}", path.display()))
        })?;
        if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(Error::config(
                field,
                format!(
                    "{} is not a PEM file (no `-----BEGIN` line)",
                    path.display()
                ),
            ));
        }
        Ok(bytes)
    }
}

#[cfg(not(feature = "tls"))]
mod disabled {
    use cachekit_core::{Error, Result};
    use redis::cluster::ClusterClientBuilder;
    use redis::{Client, ConnectionAddr, ConnectionInfo, RedisError};

    use crate::config::RedisConfig;
    use crate::errors::Target;

    /// No TLS in this build: never made.
    #[derive(Clone)]
    pub(crate) enum Certificates {}

    /// Refuses TLS: this build cannot speak it.
    pub(crate) fn prepare(target: &Target) -> Result<()> {
        Err(Error::config(
            "url",
            format!(
                "{target} asks for TLS (rediss://), but cachekit-redis was built without its `tls` feature; enable it (it is on by default)"
            ),
        ))
    }

    /// Unreachable: [`prepare`] refused TLS first.
    pub(crate) fn addr(host: &str, port: u16, _insecure: bool) -> ConnectionAddr {
        ConnectionAddr::Tcp(host.to_owned(), port)
    }

    pub(crate) fn client(
        _info: ConnectionInfo,
        certs: &Certificates,
    ) -> Result<Client, RedisError> {
        match *certs {}
    }

    pub(crate) fn cluster_certs(
        _builder: ClusterClientBuilder,
        certs: &Certificates,
    ) -> ClusterClientBuilder {
        match *certs {}
    }

    /// TLS files are read only by a build with TLS; a plain connection
    /// ignores them, as the TLS build does.
    pub(crate) fn certificates(_config: &RedisConfig) -> Result<Option<Certificates>> {
        Ok(None)
    }
}

#[cfg(all(test, not(feature = "tls")))]
mod tests {
    use crate::{RedisBackend, RedisConfig};

    /// `scripts/test.sh` runs this in a build without the feature.
    #[tokio::test]
    async fn a_tls_url_names_the_missing_feature() {
        let config = RedisConfig::builder()
            .url("rediss://127.0.0.1:1")
            .build()
            .expect("a valid URL");
        let Err(err) = RedisBackend::connect_lazy(config) else {
            panic!("a TLS URL was accepted by a build without TLS");
        };
        assert!(err.message().contains("`tls` feature"), "{err}");
    }
}
