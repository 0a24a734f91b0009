//! The unit tests of `kolla_set_configs` (tests/python, run with the host's python3).
//!
//! Images running end to end, the way the deployer runs them, are tested by
//! tests/kolla_ansible.rs (kolla-ansible 20.x's own configuration, bootstrap containers, `docker
//! exec` calls and healthchecks), which replaced the hand-written keystone stack once in this
//! file (then named tests/e2e.rs).

use std::path::Path;
use std::process::Command;

use crate::support::REPO;

#[test]
fn python_unit_tests() {
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(Path::new(REPO).join("tests/python"))
        .arg("-v")
        .output()
        .expect("python3 is installed on the host");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kolla_set_configs unit tests failed:\n{stderr}"
    );
    assert!(stderr.contains("\nOK"), "{stderr}");
}
