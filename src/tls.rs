//! TLS: one rustls stack for every connection snapsync makes (the source, the webhooks and
//! pings, S3), with ring as its crypto. reqwest is built without a provider of its own and
//! panics if a client is built before one is installed, so each client's builder calls
//! [`init`] first; the S3 client names ring itself.

/// Installs ring as the process's rustls crypto provider, once. Idempotent: when a provider is
/// installed already (an earlier call, or a program embedding the library chose one), that one
/// stays.
pub fn init() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only when another thread installed one meanwhile: that one is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The S3 client's HTTP connector: hyper over rustls with ring, the system's trusted roots.
pub(crate) fn s3_http_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
