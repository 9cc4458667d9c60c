//! The `kafka-backup` binary: the command line of the `kafka_backup` library.

fn main() -> std::process::ExitCode {
    kafka_backup::run()
}
