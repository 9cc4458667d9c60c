//! kafka-backup with the `AWS_MSK_IAM` SASL mechanism: registers it, then runs the unchanged
//! command line. Configurations select it with `sasl_mechanism: AWS_MSK_IAM`.

fn main() -> std::process::ExitCode {
    if let Err(e) = kafka_backup_msk_iam::register() {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(1);
    }
    kafka_backup::run()
}
