//! Building an `object_store` client for each backend, and naming the credential source it
//! will use.
//!
//! Credentials come from the configuration or from an allow-listed set of environment
//! variables read through the caller's lookup function. The builders' own `from_env()` is
//! not used: it reads every `AWS_*`/`AZURE_*`/`GOOGLE_*` variable, so a stray
//! `AWS_ALLOW_HTTP` or `AZURE_STORAGE_USE_EMULATOR` in a service's environment would change
//! where and how data is sent.

use std::path::Path;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientOptions, HeaderValue, ObjectStore, RetryConfig};

use super::error::{StorageError, sanitize};
use super::object_lock::{CredentialCell, LockConnector};
use super::settings::{
    AzureConfig, AzureCredentials, FilesystemConfig, GcsConfig, S3Config, S3Encryption,
    StorageConfig,
};
use super::{Backend, StorageOptions, Target};

/// The environment lookup handed to [`super::Storage::open_with`].
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(super) fn build(
    config: &StorageConfig,
    options: &StorageOptions,
    env: Env<'_>,
) -> Result<(Arc<dyn ObjectStore>, Target), StorageError> {
    match config {
        StorageConfig::Filesystem(c) => filesystem(c),
        StorageConfig::S3(c) => s3(c, options, env),
        StorageConfig::Azure(c) => azure(c, options, env),
        StorageConfig::Gcs(c) => gcs(c, options, env),
    }
}

fn client_options(options: &StorageOptions, allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(options.connect_timeout)
        .with_timeout(options.request_timeout)
        .with_allow_http(allow_http)
        .with_user_agent(HeaderValue::from_static(concat!(
            "kafka-backup/",
            env!("CARGO_PKG_VERSION")
        )))
}

fn retry_config(options: &StorageOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: options.max_retries,
        retry_timeout: options.retry_timeout,
    }
}

fn set(env: Env<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

/// A build error from `object_store`, as a configuration error. Its text is sanitized: it
/// may quote configured values.
fn build_error(backend: &'static str, err: object_store::Error, target: &Target) -> StorageError {
    StorageError::Config {
        backend,
        message: format!(
            "cannot set up the {backend} client: {}; fix the storage settings",
            sanitize(&err.to_string(), &target.secrets)
        ),
    }
}

// ---------------------------------------------------------------------------

fn filesystem(config: &FilesystemConfig) -> Result<(Arc<dyn ObjectStore>, Target), StorageError> {
    let root = &config.path;
    let config_error = |message: String| StorageError::Config {
        backend: "filesystem",
        message,
    };
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => warn_if_shared(root, &meta),
        Ok(_) => {
            return Err(config_error(format!(
                "{} exists but is not a directory; point `storage.path` at a directory",
                root.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(root).map_err(|e| {
                config_error(format!(
                    "cannot create the storage directory {}: {}; create it (mode 0700) or choose \
                     a `storage.path` this user may create",
                    root.display(),
                    describe_io(&e)
                ))
            })?;
        }
        Err(e) => {
            return Err(config_error(format!(
                "cannot use the storage directory {}: {}; check `storage.path` and the \
                 permissions of its parent directories",
                root.display(),
                describe_io(&e)
            )));
        }
    }
    let target = Target {
        backend: Backend::Filesystem,
        container: root.display().to_string(),
        account: None,
        prefix: String::new(),
        endpoint: root.display().to_string(),
        credential_source: "this process's user".to_owned(),
        kms: false,
        secrets: Vec::new(),
        root_dir: Some(root.clone()),
        object_lock: None,
        s3_control: None,
    };
    let store = LocalFileSystem::new_with_prefix(root)
        .map_err(|e| build_error("filesystem", e, &target))?
        .with_fsync(true);
    Ok((Arc::new(store), target))
}

/// Warns when other users may enter or read the storage directory (`kafka-backup check
/// --security` reports the same as a finding): the tool creates everything inside it private,
/// but a directory someone made group- or world-accessible exposes the backup to them.
fn warn_if_shared(root: &Path, meta: &std::fs::Metadata) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the storage directory {} is open to other users (mode {mode:03o}): whoever can \
                 enter it may read the backup's objects (their content too, unless client-side \
                 encryption is on); run `chmod 700 {}`",
                root.display(),
                root.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (root, meta);
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// An I/O error in words, with the cases a path under a regular file produces.
pub(super) fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotADirectory => {
            "a component of the path is a file, not a directory".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".to_owned(),
        _ => e.to_string(),
    }
}

// ---------------------------------------------------------------------------

fn s3(
    config: &S3Config,
    options: &StorageOptions,
    env: Env<'_>,
) -> Result<(Arc<dyn ObjectStore>, Target), StorageError> {
    let region = config
        .region
        .clone()
        .or_else(|| set(env, "AWS_REGION"))
        .or_else(|| set(env, "AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(&region)
        .with_client_options(client_options(options, config.allow_http))
        .with_retry(retry_config(options))
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    // `endpoint` for messages; `bucket_url` is where object paths start (as object_store
    // builds them).
    let (endpoint, bucket_url) = match &config.endpoint {
        Some(endpoint) if config.force_path_style => {
            builder = builder.with_endpoint(endpoint);
            let base = endpoint.trim_end_matches('/');
            (endpoint.clone(), format!("{base}/{}", config.bucket))
        }
        Some(endpoint) => {
            let hosted = virtual_hosted_endpoint(endpoint, &config.bucket);
            builder = builder
                .with_endpoint(&hosted)
                .with_virtual_hosted_style_request(true);
            (hosted.clone(), hosted)
        }
        None => {
            builder = builder.with_virtual_hosted_style_request(!config.force_path_style);
            if config.force_path_style {
                let base = format!("https://s3.{region}.amazonaws.com");
                let bucket_url = format!("{base}/{}", config.bucket);
                (base, bucket_url)
            } else {
                let hosted = format!("https://{}.s3.{region}.amazonaws.com", config.bucket);
                (hosted.clone(), hosted)
            }
        }
    };

    let mut secrets = Vec::new();
    let credential_source = if let Some(creds) = &config.credentials {
        builder = builder
            .with_access_key_id(&creds.access_key_id)
            .with_secret_access_key(creds.secret_access_key.expose());
        secrets.push(creds.secret_access_key.clone());
        if let Some(token) = &creds.session_token {
            builder = builder.with_token(token.expose());
            secrets.push(token.clone());
        }
        format!(
            "the access key {} (storage.access_key/secret_key{})",
            creds.access_key_id,
            if creds.session_token.is_some() {
                "/session_token"
            } else {
                ""
            }
        )
    } else {
        let (b, source) = s3_environment_credentials(builder, env, &mut secrets)?;
        builder = b;
        source
    };

    // `object_store` 0.14 does not export its encryption key enum; its names parse.
    let sse_key = |name: &str| {
        name.parse::<AmazonS3ConfigKey>()
            .expect("object_store knows its own encryption setting names")
    };
    match &config.sse {
        None => {}
        Some(S3Encryption::Aes256) => {
            builder = builder.with_config(sse_key("aws_server_side_encryption"), "AES256");
        }
        Some(S3Encryption::Kms { key_id }) => {
            builder = builder.with_config(sse_key("aws_server_side_encryption"), "aws:kms");
            if let Some(id) = key_id {
                builder = builder.with_config(sse_key("aws_sse_kms_key_id"), id);
            }
        }
    }

    let mut target = Target {
        backend: Backend::S3,
        container: config.bucket.clone(),
        account: None,
        prefix: config.prefix.clone(),
        endpoint,
        credential_source,
        kms: matches!(config.sse, Some(S3Encryption::Kms { .. })),
        secrets,
        root_dir: None,
        object_lock: None,
        s3_control: None,
    };
    // Object Lock: every object PUT carries the retention, signed with the request (see
    // object_lock.rs for why this is a connector).
    let credentials = CredentialCell::default();
    if let Some(lock) = config.object_lock {
        let bucket_url = url::Url::parse(&bucket_url).map_err(|e| StorageError::Config {
            backend: "s3",
            message: format!(
                "the bucket URL {} is not a URL ({e}); fix storage.endpoint and storage.bucket",
                sanitize(&bucket_url, &target.secrets)
            ),
        })?;
        builder = builder.with_http_connector(LockConnector::new(
            lock,
            bucket_url,
            region.clone(),
            Arc::clone(&credentials),
        ));
        target.object_lock = Some(lock);
    }
    target.s3_control = Some(Arc::new(super::bucket::S3Control {
        bucket_url: bucket_url.clone(),
        region: region.clone(),
        credentials: Arc::clone(&credentials),
        client_options: client_options(options, config.allow_http),
    }));
    let store = builder.build().map_err(|e| build_error("s3", e, &target))?;
    // Set before the store is handed out, so before any request.
    let _ = credentials.set(Arc::clone(store.credentials()));
    Ok((Arc::new(store), target))
}

/// The standard chain, in `object_store`'s order, from allow-listed variables only.
fn s3_environment_credentials(
    mut builder: AmazonS3Builder,
    env: Env<'_>,
    secrets: &mut Vec<kafka_client::Secret>,
) -> Result<(AmazonS3Builder, String), StorageError> {
    let key_id = set(env, "AWS_ACCESS_KEY_ID");
    let secret = set(env, "AWS_SECRET_ACCESS_KEY");
    match (key_id, secret) {
        (Some(key_id), Some(secret)) => {
            let secret = kafka_client::Secret::new(secret);
            builder = builder
                .with_access_key_id(&key_id)
                .with_secret_access_key(secret.expose());
            secrets.push(secret);
            let mut source =
                format!("the access key {key_id} (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
            if let Some(token) = set(env, "AWS_SESSION_TOKEN") {
                let token = kafka_client::Secret::new(token);
                builder = builder.with_token(token.expose());
                secrets.push(token);
                source.push_str("/AWS_SESSION_TOKEN");
            }
            source.push(')');
            return Ok((builder, source));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(StorageError::Config {
                backend: "s3",
                message: "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set in the \
                          environment; set both, or neither to use a role (web identity, ECS, \
                          EKS Pod Identity or instance metadata)"
                    .to_owned(),
            });
        }
        (None, None) => {}
    }
    if let (Some(token_file), Some(role)) = (
        set(env, "AWS_WEB_IDENTITY_TOKEN_FILE"),
        set(env, "AWS_ROLE_ARN"),
    ) {
        builder = builder
            .with_config(AmazonS3ConfigKey::WebIdentityTokenFile, &token_file)
            .with_config(AmazonS3ConfigKey::RoleArn, &role);
        if let Some(name) = set(env, "AWS_ROLE_SESSION_NAME") {
            builder = builder.with_config(AmazonS3ConfigKey::RoleSessionName, name);
        }
        if let Some(sts) = set(env, "AWS_ENDPOINT_URL_STS") {
            builder = builder.with_config(AmazonS3ConfigKey::StsEndpoint, sts);
        }
        return Ok((
            builder,
            format!(
                "web identity (role {role} with the token in {token_file}, from \
                 AWS_ROLE_ARN/AWS_WEB_IDENTITY_TOKEN_FILE)"
            ),
        ));
    }
    if let Some(uri) = set(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        builder = builder.with_config(AmazonS3ConfigKey::ContainerCredentialsRelativeUri, uri);
        return Ok((
            builder,
            "the ECS task role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)".to_owned(),
        ));
    }
    if let (Some(uri), Some(token_file)) = (
        set(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        set(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
    ) {
        builder = builder
            .with_config(AmazonS3ConfigKey::ContainerCredentialsFullUri, uri)
            .with_config(
                AmazonS3ConfigKey::ContainerAuthorizationTokenFile,
                token_file,
            );
        return Ok((
            builder,
            "EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI)".to_owned(),
        ));
    }
    let mut source =
        "the EC2 instance metadata service (IMDSv2), because no access_key/secret_key \
                      is configured and no AWS_ACCESS_KEY_ID, AWS_WEB_IDENTITY_TOKEN_FILE or \
                      AWS_CONTAINER_CREDENTIALS_* variable is set"
            .to_owned();
    if set(env, "AWS_PROFILE").is_some() {
        source.push_str(" (AWS_PROFILE is set, but named profiles in ~/.aws are not supported)");
    }
    Ok((builder, source))
}

/// `https://host:port/path` with the bucket as the first label of the host.
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(mut url) => {
            if let Some(host) = url.host_str().map(str::to_owned) {
                // Validation rejects IP addresses here, so setting a domain cannot fail.
                let _ = url.set_host(Some(&format!("{bucket}.{host}")));
            }
            url.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => endpoint.to_owned(),
    }
}

// ---------------------------------------------------------------------------

fn azure(
    config: &AzureConfig,
    options: &StorageOptions,
    env: Env<'_>,
) -> Result<(Arc<dyn ObjectStore>, Target), StorageError> {
    let mut builder = MicrosoftAzureBuilder::new()
        .with_account(&config.account_name)
        .with_container_name(&config.container_name)
        .with_client_options(client_options(options, config.allow_http))
        .with_retry(retry_config(options));
    let endpoint = match &config.endpoint {
        Some(endpoint) => {
            builder = builder.with_endpoint(endpoint.clone());
            endpoint.clone()
        }
        None => format!("https://{}.blob.core.windows.net", config.account_name),
    };
    let mut secrets = Vec::new();
    let credential_source = match &config.credentials {
        AzureCredentials::AccountKey(key) => {
            builder = builder.with_access_key(key.expose());
            secrets.push(key.clone());
            format!(
                "the account key of {} (storage.account_key)",
                config.account_name
            )
        }
        AzureCredentials::SasToken(token) => {
            builder = builder.with_config(AzureConfigKey::SasKey, token.expose());
            secrets.push(token.clone());
            // Each signature value is also masked on its own, in case a message splits them.
            for pair in token.expose().trim_start_matches('?').split('&') {
                if let Some(("sig", value)) = pair.split_once('=') {
                    secrets.push(kafka_client::Secret::new(value));
                }
            }
            "the SAS token (storage.sas_token)".to_owned()
        }
        AzureCredentials::Environment => {
            let client_id = set(env, "AZURE_CLIENT_ID");
            let tenant_id = set(env, "AZURE_TENANT_ID");
            let token_file = set(env, "AZURE_FEDERATED_TOKEN_FILE");
            let client_secret = set(env, "AZURE_CLIENT_SECRET");
            if let Some(host) = set(env, "AZURE_AUTHORITY_HOST") {
                builder = builder.with_authority_host(host);
            }
            match (client_id, tenant_id, token_file, client_secret) {
                (Some(id), Some(tenant), Some(file), _) => {
                    builder = builder
                        .with_client_id(&id)
                        .with_tenant_id(&tenant)
                        .with_federated_token_file(&file)
                        .with_credential_type("workload_identity");
                    format!(
                        "workload identity (client {id} in tenant {tenant}, token file {file}, \
                         from AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_FEDERATED_TOKEN_FILE)"
                    )
                }
                (Some(id), Some(tenant), None, Some(secret)) => {
                    let secret = kafka_client::Secret::new(secret);
                    builder = builder
                        .with_client_id(&id)
                        .with_tenant_id(&tenant)
                        .with_client_secret(secret.expose())
                        .with_credential_type("client_secret");
                    secrets.push(secret);
                    format!(
                        "the service principal {id} in tenant {tenant} \
                         (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET)"
                    )
                }
                (id, _, _, _) => {
                    builder = builder.with_credential_type("managed_identity");
                    match id {
                        Some(id) => {
                            builder = builder.with_client_id(&id);
                            format!(
                                "the user-assigned managed identity {id} (AZURE_CLIENT_ID), \
                                 because neither storage.account_key nor storage.sas_token is \
                                 configured"
                            )
                        }
                        None => "the system-assigned managed identity (instance metadata), \
                                 because neither storage.account_key nor storage.sas_token is \
                                 configured and no AZURE_CLIENT_ID/AZURE_TENANT_ID is set"
                            .to_owned(),
                    }
                }
            }
        }
    };
    let target = Target {
        backend: Backend::Azure,
        container: config.container_name.clone(),
        account: Some(config.account_name.clone()),
        prefix: config.prefix.clone(),
        endpoint,
        credential_source,
        kms: false,
        secrets,
        root_dir: None,
        object_lock: None,
        s3_control: None,
    };
    let store = builder
        .build()
        .map_err(|e| build_error("azure", e, &target))?;
    Ok((Arc::new(store), target))
}

// ---------------------------------------------------------------------------

fn gcs(
    config: &GcsConfig,
    options: &StorageOptions,
    env: Env<'_>,
) -> Result<(Arc<dyn ObjectStore>, Target), StorageError> {
    let mut builder = GoogleCloudStorageBuilder::new()
        .with_bucket_name(&config.bucket)
        .with_client_options(client_options(options, config.allow_http))
        .with_retry(retry_config(options));
    let endpoint = match &config.endpoint {
        Some(endpoint) => {
            builder = builder.with_base_url(endpoint);
            endpoint.clone()
        }
        None => "https://storage.googleapis.com".to_owned(),
    };
    let credential_source = match &config.service_account_path {
        Some(path) => {
            builder = builder.with_service_account_path(path.display().to_string());
            format!(
                "the service account key file {} (storage.service_account_path)",
                path.display()
            )
        }
        None => match set(env, "GOOGLE_APPLICATION_CREDENTIALS") {
            Some(path) => {
                builder = builder.with_application_credentials(&path);
                format!(
                    "application default credentials from {path} (GOOGLE_APPLICATION_CREDENTIALS)"
                )
            }
            None => {
                "application default credentials (gcloud's application_default_credentials.json, \
                     else the GCE metadata server), because storage.service_account_path is not \
                     configured and GOOGLE_APPLICATION_CREDENTIALS is not set"
                    .to_owned()
            }
        },
    };
    let target = Target {
        backend: Backend::Gcs,
        container: config.bucket.clone(),
        account: None,
        prefix: config.prefix.clone(),
        endpoint,
        credential_source,
        kms: false,
        secrets: Vec::new(),
        root_dir: None,
        object_lock: None,
        s3_control: None,
    };
    let store = builder
        .build()
        .map_err(|e| build_error("gcs", e, &target))?;
    Ok((Arc::new(store), target))
}
