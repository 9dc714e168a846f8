//! Connecting to MQTT brokers: the client options both triggers and the
//! outbox use (MQTT 5, TLS through rustls with ring and the web's roots).

use crate::config::{BrokerAddress, EventsConfig};
use rumqttc::v5::MqttOptions;
use std::sync::Arc;

/// Who connects, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The broker.
    pub address: BrokerAddress,
    /// The client id.
    pub client_id: String,
    /// The user name (the spec's, else the URL's).
    pub username: Option<String>,
    /// The password, opened from the function's secret.
    pub password: Option<String>,
}

impl Connect {
    /// rumqttc's options for this connection under `events`' limits; an
    /// error says why TLS cannot be set up.
    pub fn options(&self, events: &EventsConfig) -> Result<MqttOptions, String> {
        let mut options = MqttOptions::new(
            self.client_id.clone(),
            self.address.host.clone(),
            self.address.port,
        );
        options.set_keep_alive(events.keep_alive.0);
        // The largest message, with room for its topic and properties.
        let max_packet = events.max_message_bytes.0.saturating_add(70_000);
        options.set_max_packet_size(Some(u32::try_from(max_packet).unwrap_or(u32::MAX)));
        options.set_connection_timeout(10);
        if self.username.is_some() || self.password.is_some() {
            options.set_credentials(
                self.username.clone().unwrap_or_default(),
                self.password.clone().unwrap_or_default(),
            );
        }
        if self.address.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls_config(&events.broker_ca_file)?),
            ));
        }
        Ok(options)
    }
}

/// TLS to brokers: ring, the web's root certificates and those of
/// `ca_file` (PEM; an empty path: none).
fn tls_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if !ca_file.as_os_str().is_empty() {
        let certs = CertificateDer::pem_file_iter(ca_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("reading {}: {e}", ca_file.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!("{} holds no usable certificate", ca_file.display()));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The wait before reconnect attempt `failures` (1, 2, …): `min` doubled,
/// at most `max`.
pub fn backoff(events: &EventsConfig, failures: u32) -> std::time::Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    events
        .reconnect_min
        .0
        .saturating_mul(factor)
        .min(events.reconnect_max.0)
}
