//! One module per command.

pub mod backup;
pub mod check;
pub mod restore;
