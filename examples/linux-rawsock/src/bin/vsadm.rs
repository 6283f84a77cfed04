//! `vsadm`: ipvsadm's command line for vsd. The work is done by the `vsd` binary beside this
//! one, which is vsadm when invoked under that name; this launcher runs it so.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let vsd = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("vsd")));
    let Some(vsd) = vsd.filter(|p| p.exists()) else {
        eprintln!("vsadm: the vsd binary must be installed beside vsadm");
        return ExitCode::from(255);
    };
    let error = std::process::Command::new(&vsd).arg0("vsadm").args(std::env::args_os().skip(1)).exec();
    eprintln!("vsadm: {}: {error}", vsd.display());
    ExitCode::from(255)
}
