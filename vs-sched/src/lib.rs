//! IPVS schedulers behind one trait; the schedulers arrive with the scheduler issue (#3).
#![no_std]
#![forbid(unsafe_code)]
