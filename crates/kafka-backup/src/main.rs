//! The `kafka-backup` command line.

fn main() {
    println!("kafka-backup");
}
