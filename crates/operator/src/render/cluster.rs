//! `spec.kafkaCluster` as the configuration's `source:` or `target:`.
//!
//! Inconsistent settings are refused here, naming the resource's fields, rather than left to
//! the loader in the Pod, which would name configuration keys the user never wrote and only
//! once a Job has started.

use super::RenderError;
use super::model::{Cluster, Security};
use super::mounts::{Mounts, literal};
use crate::crd::{KafkaClusterSpec, OAuthSpec, SecurityProtocol, TlsSecretRef};

const FIELD: &str = "spec.kafkaCluster";

/// The cluster section (without topics), recording the Secrets it names in `mounts`.
pub(super) fn cluster(
    spec: &KafkaClusterSpec,
    mounts: &mut Mounts,
) -> Result<Cluster, RenderError> {
    if spec.bootstrap_servers.iter().all(|s| s.trim().is_empty()) {
        return Err(invalid(
            "bootstrapServers",
            "no broker is given; list at least one as host:port, e.g. \
             my-cluster-kafka-bootstrap:9093",
        ));
    }
    let protocol = spec
        .security_protocol
        .unwrap_or(SecurityProtocol::Plaintext);
    let mut security = Security {
        security_protocol: protocol.as_str(),
        ..Security::default()
    };
    tls(spec, protocol, &mut security, mounts)?;
    sasl(spec, protocol, &mut security, mounts)?;
    Ok(Cluster {
        bootstrap_servers: spec
            .bootstrap_servers
            .iter()
            .map(|s| literal(s.trim()))
            .collect(),
        security,
        topics: None,
    })
}

fn invalid(field: &str, reason: &str) -> RenderError {
    RenderError::InvalidSpec {
        field: format!("{FIELD}.{field}"),
        reason: reason.to_owned(),
    }
}

fn missing_key(field: &str, secret: &str, missing: &str, hint: &str) -> RenderError {
    RenderError::MissingSecretKey {
        field: format!("{FIELD}.{field}"),
        secret: secret.to_owned(),
        missing: missing.to_owned(),
        hint: hint.to_owned(),
    }
}

fn tls(
    spec: &KafkaClusterSpec,
    protocol: SecurityProtocol,
    security: &mut Security,
    mounts: &mut Mounts,
) -> Result<(), RenderError> {
    let named = [
        ("caSecret", spec.ca_secret.is_some()),
        ("tlsSecret", spec.tls_secret.is_some()),
    ];
    if !protocol.uses_tls() {
        if let Some((field, _)) = named.iter().find(|(_, set)| *set) {
            let instead = match protocol {
                SecurityProtocol::SaslPlaintext => "SASL_SSL",
                _ => "SSL (or SASL_SSL)",
            };
            return Err(invalid(
                field,
                &format!(
                    "TLS material is given but securityProtocol is {}, which does not use TLS; \
                     did you mean securityProtocol: {instead}?",
                    protocol.as_str()
                ),
            ));
        }
        return Ok(());
    }
    if let Some(tls) = &spec.tls_secret {
        client_certificate(tls, security, mounts)?;
    }
    // The cluster CA Secret takes precedence over tlsSecret.caKey, as the CRD documents: a
    // Strimzi user Secret carries the clients CA, not the one that signed the brokers.
    security.ssl_ca_location = match (&spec.ca_secret, &spec.tls_secret) {
        (Some(ca), _) => Some(mounts.secret_file(&ca.name, &ca.ca_key)),
        (
            None,
            Some(TlsSecretRef {
                name,
                ca_key: Some(key),
                ..
            }),
        ) => Some(mounts.secret_file(name, key)),
        _ => None,
    };
    Ok(())
}

fn client_certificate(
    tls: &TlsSecretRef,
    security: &mut Security,
    mounts: &mut Mounts,
) -> Result<(), RenderError> {
    let field = "tlsSecret";
    match (&tls.cert_key, &tls.key_key) {
        (Some(cert), Some(key)) => {
            security.ssl_certificate_location = Some(mounts.secret_file(&tls.name, cert));
            security.ssl_key_location = Some(mounts.secret_file(&tls.name, key));
        }
        (Some(_), None) => {
            return Err(missing_key(
                field,
                &tls.name,
                "keyKey",
                "a client certificate needs its private key; name its key, e.g. keyKey: \
                 user.key for a Strimzi KafkaUser Secret",
            ));
        }
        (None, Some(_)) => {
            return Err(missing_key(
                field,
                &tls.name,
                "certKey",
                "a private key needs its client certificate; name its key, e.g. certKey: \
                 user.crt for a Strimzi KafkaUser Secret",
            ));
        }
        (None, None) => {
            if tls.key_password_key.is_some() {
                return Err(missing_key(
                    field,
                    &tls.name,
                    "keyKey",
                    "keyPasswordKey decrypts a private key; name the key and the certificate \
                     too (keyKey and certKey), or remove keyPasswordKey",
                ));
            }
            if tls.ca_key.is_none() {
                return Err(missing_key(
                    field,
                    &tls.name,
                    "caKey, or certKey and keyKey",
                    "name the CA certificate's key (caKey: ca.crt) and/or the client \
                     certificate and key (certKey: user.crt, keyKey: user.key)",
                ));
            }
        }
    }
    if let Some(password) = &tls.key_password_key {
        security.ssl_key_password = Some(mounts.secret_value(&tls.name, password));
    }
    Ok(())
}

fn sasl(
    spec: &KafkaClusterSpec,
    protocol: SecurityProtocol,
    security: &mut Security,
    mounts: &mut Mounts,
) -> Result<(), RenderError> {
    let given: Vec<&str> = [
        ("saslSecret", spec.sasl_secret.is_some()),
        ("kerberos", spec.kerberos.is_some()),
        ("oauth", spec.oauth.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match (given.as_slice(), protocol.uses_sasl()) {
        ([], false) => return Ok(()),
        ([], true) => {
            return Err(invalid(
                "securityProtocol",
                &format!(
                    "{} authenticates with SASL but no credentials are given; add saslSecret \
                     (PLAIN, SCRAM), kerberos (GSSAPI) or oauth (OAUTHBEARER), or use {}",
                    protocol.as_str(),
                    if protocol.uses_tls() {
                        "SSL"
                    } else {
                        "PLAINTEXT"
                    }
                ),
            ));
        }
        ([one], false) => {
            return Err(invalid(
                one,
                &format!(
                    "SASL credentials are given but securityProtocol is {}, which does not \
                     use SASL; did you mean securityProtocol: {}?",
                    protocol.as_str(),
                    if protocol.uses_tls() {
                        "SASL_SSL"
                    } else {
                        "SASL_SSL (or SASL_PLAINTEXT)"
                    }
                ),
            ));
        }
        ([_], true) => {}
        (many, _) => {
            return Err(invalid(
                many[1],
                &format!(
                    "{} are all given; a connection authenticates one way: keep one of them",
                    many.join(" and ")
                ),
            ));
        }
    }
    if let Some(sasl) = &spec.sasl_secret {
        let field = "saslSecret";
        security.sasl_mechanism = Some(sasl.mechanism.as_str());
        security.sasl_username = Some(match (&sasl.username_key, &sasl.username) {
            (Some(key), None) => mounts.secret_value(&sasl.name, key),
            (None, Some(name)) => literal(name),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    field,
                    "usernameKey and username are both given; keep usernameKey when the \
                     Secret holds the user name, username otherwise",
                ));
            }
            (None, None) => {
                return Err(missing_key(
                    field,
                    &sasl.name,
                    "usernameKey",
                    "name the key holding the user name, or give username: <the KafkaUser's \
                     name> (Strimzi's SCRAM user Secrets hold only password)",
                ));
            }
        });
        security.sasl_password = Some(mounts.secret_value(&sasl.name, &sasl.password_key));
    }
    if let Some(kerberos) = &spec.kerberos {
        security.sasl_mechanism = Some("GSSAPI");
        security.sasl_kerberos_service_name = Some(literal(&kerberos.service_name));
        security.sasl_keytab_path =
            Some(mounts.secret_file(&kerberos.keytab_secret.name, &kerberos.keytab_secret.key));
        security.sasl_kerberos_principal = kerberos.principal.as_deref().map(literal);
        security.sasl_krb5_config_path = kerberos
            .krb5_config_map
            .as_ref()
            .map(|c| mounts.config_map_file(&c.name, &c.key));
    }
    if let Some(oauth) = &spec.oauth {
        oauthbearer(oauth, security, mounts)?;
    }
    Ok(())
}

fn oauthbearer(
    oauth: &OAuthSpec,
    security: &mut Security,
    mounts: &mut Mounts,
) -> Result<(), RenderError> {
    security.sasl_mechanism = Some("OAUTHBEARER");
    security.sasl_oauthbearer_extensions = oauth
        .extensions
        .iter()
        .map(|(k, v)| (k.clone(), literal(v)))
        .collect();
    let endpoint_keys = [
        ("tokenEndpointUrl", oauth.token_endpoint_url.is_some()),
        ("clientId", oauth.client_id.is_some()),
        ("clientSecretSecret", oauth.client_secret_secret.is_some()),
        ("scope", oauth.scope.is_some()),
        (
            "tokenEndpointCaSecret",
            oauth.token_endpoint_ca_secret.is_some(),
        ),
    ];
    if let Some(token) = &oauth.token_secret {
        if let Some((key, _)) = endpoint_keys.iter().find(|(_, set)| *set) {
            return Err(invalid(
                &format!("oauth.{key}"),
                "is only used to fetch tokens from a token endpoint, but oauth.tokenSecret \
                 supplies them; keep tokenSecret alone, or remove it and fetch tokens with \
                 tokenEndpointUrl, clientId and clientSecretSecret",
            ));
        }
        security.sasl_oauthbearer_token_file = Some(mounts.secret_file(&token.name, &token.key));
        return Ok(());
    }
    let (Some(url), Some(client_id), Some(secret)) = (
        &oauth.token_endpoint_url,
        &oauth.client_id,
        &oauth.client_secret_secret,
    ) else {
        let missing: Vec<&str> = endpoint_keys[..3]
            .iter()
            .filter(|(_, set)| !set)
            .map(|(k, _)| *k)
            .collect();
        return Err(invalid(
            "oauth",
            &format!(
                "lacks {}: give tokenEndpointUrl, clientId and clientSecretSecret (OAuth client \
                 credentials), or tokenSecret (a token kept current by something else)",
                missing.join(", ")
            ),
        ));
    };
    security.sasl_oauthbearer_token_endpoint_url = Some(literal(url));
    security.sasl_oauthbearer_client_id = Some(literal(client_id));
    security.sasl_oauthbearer_client_secret = Some(mounts.secret_value(&secret.name, &secret.key));
    security.sasl_oauthbearer_scope = oauth.scope.as_deref().map(literal);
    security.sasl_oauthbearer_ca_location = oauth
        .token_endpoint_ca_secret
        .as_ref()
        .map(|ca| mounts.secret_file(&ca.name, &ca.key));
    Ok(())
}
