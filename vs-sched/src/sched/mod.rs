//! The fourteen IPVS schedulers.

pub mod hashing;
pub mod least;
pub mod locality;
pub mod mh;
pub mod rr;
pub mod twos;
pub mod weight;
pub mod wrr;
