//! The function's environment: what every owners' door reads ([`DoorConfig`]).

pub use paysaga_aws::doors::DoorConfig as Config;
