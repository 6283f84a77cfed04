//! `vsadm`: ipvsadm's command line for vsd (issue 10, in progress). So far: the command-line
//! parser, which reproduces ipvsadm 1.31's popt semantics and its parse-time errors (checked
//! against the recordings in `tests/ipvsadm/recorded.txt`). Built for tests only until the
//! commands are carried out against vsd.

pub(crate) mod parse;
