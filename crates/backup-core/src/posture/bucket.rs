//! Findings from an S3 bucket's own settings: default encryption and public access, as the
//! service reports them ([`crate::storage::Storage::bucket_facts`]).

use crate::config::LoadedConfig;
use crate::storage::{Answer, BucketFacts, StorageConfig};

use super::{Finding, Severity};

/// The findings `facts` give for the bucket of `loaded` (read from `config`).
pub fn assess_bucket(config: &str, loaded: &LoadedConfig, facts: &BucketFacts) -> Vec<Finding> {
    let Some(StorageConfig::S3(s3)) = &loaded.storage else {
        return Vec::new();
    };
    let bucket = &s3.bucket;
    let mut out = Vec::new();
    let mut add = |rule: &'static str, severity, title: &str, evidence: String, fix: String| {
        out.push(Finding {
            rule,
            severity,
            title: title.to_owned(),
            evidence,
            fix,
            config: config.to_owned(),
            line: None,
        });
    };
    let mut unknown = Vec::new();
    let mut note = |what: &str, answer: &Answer| match answer {
        Answer::Denied(permission) => {
            unknown.push(format!("{what}: access denied (needs {permission})"))
        }
        Answer::Failed(why) => unknown.push(format!("{what}: {why}")),
        _ => {}
    };
    note("GetBucketEncryption", &facts.default_encryption);
    note("GetPublicAccessBlock", &facts.public_access_block);
    note("GetBucketPolicyStatus", &facts.policy_status);
    note("GetBucketAcl", &facts.acl);

    if facts.default_encryption == Answer::NotSet {
        // Objects are still encrypted when every write asks for it, or on the client.
        let covered = s3.sse.is_some()
            || loaded
                .backup
                .as_ref()
                .is_some_and(|b| b.encryption.is_some());
        add(
            "KB-STO-010",
            if covered {
                Severity::Low
            } else {
                Severity::Medium
            },
            "The bucket has no default encryption",
            format!(
                "GetBucketEncryption on {bucket}: no server-side encryption configuration{}",
                if covered {
                    " (this configuration encrypts what it writes itself)"
                } else {
                    ""
                }
            ),
            format!(
                "aws s3api put-bucket-encryption --bucket {bucket} \
                 --server-side-encryption-configuration \
                 '{{\"Rules\":[{{\"ApplyServerSideEncryptionByDefault\":{{\"SSEAlgorithm\":\"aws:kms\"}}}}]}}', \
                 so that whatever reaches the bucket is encrypted at rest; and encrypt on the \
                 client (backup.encryption)"
            ),
        );
    }
    if let Answer::Set(status) = &facts.policy_status
        && status == "public"
    {
        add(
            "KB-STO-011",
            Severity::High,
            "The bucket policy makes the bucket public",
            format!("GetBucketPolicyStatus on {bucket}: IsPublic is true"),
            format!(
                "remove the statements that grant Principal \"*\" from the policy of {bucket} \
                 and turn on Block Public Access (aws s3api put-public-access-block)"
            ),
        );
    }
    if let Answer::Set(grantees) = &facts.acl
        && !grantees.is_empty()
    {
        add(
            "KB-STO-012",
            Severity::High,
            "The bucket ACL grants access to everyone",
            format!("GetBucketAcl on {bucket}: grants to {grantees}"),
            format!(
                "aws s3api put-bucket-acl --bucket {bucket} --acl private, and set Object \
                 Ownership to BucketOwnerEnforced so that ACLs no longer apply"
            ),
        );
    }
    let blocks_off = match &facts.public_access_block {
        Answer::NotSet => Some("no Block Public Access configuration".to_owned()),
        Answer::Set(off) if !off.is_empty() => Some(format!("off: {off}")),
        _ => None,
    };
    if let Some(evidence) = blocks_off {
        add(
            "KB-STO-013",
            Severity::Medium,
            "The bucket does not block public access",
            format!("GetPublicAccessBlock on {bucket}: {evidence}"),
            format!(
                "aws s3api put-public-access-block --bucket {bucket} \
                 --public-access-block-configuration \
                 BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true \
                 (or at the account level), so that no later policy or ACL can expose the backups"
            ),
        );
    }
    if !unknown.is_empty() {
        add(
            "KB-STO-014",
            Severity::Low,
            "The bucket's own protection could not be checked",
            unknown.join("; "),
            "run check --security --storage with an identity that may read the bucket's \
             settings (a security auditor's role: s3:GetEncryptionConfiguration, \
             s3:GetBucketPublicAccessBlock, s3:GetBucketPolicyStatus, s3:GetBucketAcl); the \
             backup and restore roles need none of them"
                .to_owned(),
        );
    }
    out
}
