//! End to end: images built by the tool run the way a deploy tool runs them. For debian binary
//! and debian source, mariadb-server, memcached and keystone (and their ancestors) are built,
//! then started through `kolla_start` with a config.json and config files mounted at
//! /var/lib/kolla/config_files on a network of their own: mariadb is bootstrapped
//! (KOLLA_BOOTSTRAP), keystone runs `db_sync` (KOLLA_BOOTSTRAP) and `keystone-manage bootstrap`,
//! then serves `GET /v3` and issues a token to admin; the healthcheck scripts must pass. Every
//! wait is bounded, and the containers, volumes and network go away even when a step fails.
//!
//! Also here: the unit tests of `kolla_set_configs` (tests/python, run with the host's python3).

use std::cell::RefCell;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::engine::{Namespace, debian_args, engine_lock, kolla_build};
use crate::support::REPO;

const LABEL: &str = "org.kolla-build.test=e2e";
const DB_ROOT_PASSWORD: &str = "e2e-root-secret";
const KEYSTONE_DB_PASSWORD: &str = "e2e-keystone-secret";
const ADMIN_PASSWORD: &str = "e2e-admin-secret";

#[test]
fn set_configs_unit_tests() {
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

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

/// Runs docker and returns its stdout; panics with its stderr when it fails.
#[track_caller]
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every second until it holds or `limit` passes.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if start.elapsed() >= limit => {
                panic!("{what}: not done after {limit:?}; last result: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// The containers, volumes and network of one run, removed when dropped (also on panic).
struct Stack {
    prefix: String,
    network: String,
    containers: RefCell<Vec<String>>,
    volumes: RefCell<Vec<String>>,
}

impl Stack {
    fn new(install_type: &str) -> Stack {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!("kbe2e-{install_type}-{}-{nanos}", std::process::id());
        let stack = Stack {
            network: prefix.clone(),
            prefix,
            containers: RefCell::new(Vec::new()),
            volumes: RefCell::new(Vec::new()),
        };
        docker_ok(&["network", "create", "--label", LABEL, &stack.network]);
        stack
    }

    fn name(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix)
    }

    fn volume(&self, what: &str) -> String {
        let name = self.name(what);
        self.volumes.borrow_mut().push(name.clone());
        docker_ok(&["volume", "create", "--label", LABEL, &name]);
        name
    }

    /// Starts a detached container named `<prefix>-<service>` on the network, with `config`
    /// mounted read-only at /var/lib/kolla/config_files and KOLLA_CONFIG_STRATEGY=COPY_ALWAYS.
    fn start(&self, service: &str, image: &str, config: &Path, extra: &[String]) -> String {
        let name = self.name(service);
        self.containers.borrow_mut().push(name.clone());
        let mount = format!("{}:/var/lib/kolla/config_files:ro", config.display());
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            LABEL,
            "--network",
            &self.network,
            "-v",
            &mount,
            "-e",
            "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().cloned());
        args.push(image.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        name
    }

    fn logs(&self, name: &str) -> String {
        let out = docker(&["logs", "--tail", "60", name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Waits (bounded) for a container to exit, and returns its exit code and logs.
    fn wait_exit(&self, name: &str, limit: Duration) -> (i64, String) {
        let mut code = None;
        wait_for(&format!("{name} exits"), limit, || {
            let state = docker_ok(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                name,
            ]);
            match state.trim().split_once(' ') {
                Some(("exited", c)) => {
                    code = c.parse().ok();
                    Ok(())
                }
                _ => Err(format!("{}\n{}", state.trim(), self.logs(name))),
            }
        });
        (code.unwrap_or(-1), self.logs(name))
    }

    /// Runs a command in a running container (as `user` when given).
    fn exec(&self, name: &str, user: Option<&str>, cmd: &[&str]) -> Output {
        let mut args = vec!["exec"];
        if let Some(user) = user {
            args.extend(["-u", user]);
        }
        args.push(name);
        args.extend(cmd);
        docker(&args)
    }

    #[track_caller]
    fn exec_ok(&self, name: &str, user: Option<&str>, cmd: &[&str]) -> String {
        let out = self.exec(name, user, cmd);
        assert!(
            out.status.success(),
            "docker exec {name} {}: {}\n{}\nlogs:\n{}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.logs(name)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded) for a command in a container to succeed: a healthcheck.
    fn wait_healthy(&self, name: &str, cmd: &[&str], limit: Duration) {
        wait_for(&format!("{name}: {}", cmd.join(" ")), limit, || {
            let state = docker_ok(&["inspect", "--format", "{{.State.Status}}", name]);
            assert_eq!(
                state.trim(),
                "running",
                "{name} stopped:\n{}",
                self.logs(name)
            );
            let out = self.exec(name, None, cmd);
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{}{}\nlogs:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    self.logs(name)
                ))
            }
        });
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for name in self.containers.borrow().iter() {
            let _ = docker(&["rm", "-f", "-v", name]);
        }
        for name in self.volumes.borrow().iter() {
            let _ = docker(&["volume", "rm", "-f", name]);
        }
        let _ = docker(&["network", "rm", &self.network]);
    }
}

/// Writes `files` (name, text) and config.json into a new directory under `dir`.
fn config_dir(
    dir: &Path,
    service: &str,
    config: &serde_json::Value,
    files: &[(&str, String)],
) -> std::path::PathBuf {
    let path = dir.join(service);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(
        path.join("config.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(path.join(name), text).unwrap();
    }
    path
}

/// `curl` inside a container of the network: returns (status, headers).
fn curl(stack: &Stack, from: &str, args: &[&str]) -> (u32, String) {
    let mut cmd = vec![
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--dump-header",
        "-",
        "--output",
        "/dev/null",
    ];
    cmd.extend(args);
    let headers = stack.exec_ok(from, None, &cmd);
    let status = headers
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, headers)
}

fn keystone_runs(install_type: &str) {
    let _lock = engine_lock();
    let ns = Namespace::new(&format!("e2e-{install_type}"));
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();

    let mut args = debian_args(install_type, &ns);
    args.extend(["^keystone$", "^mariadb-server$", "^memcached$"].map(String::from));
    let build = kolla_build(work.path(), &args);
    assert_eq!(build.code, Some(0), "build failed:\n{}", build.stderr);
    eprintln!(
        "e2e {install_type}: images built in {:?}",
        started.elapsed()
    );
    let image = |name: &str| format!("{}/debian-{install_type}-{name}:2024.1", ns.0);

    let stack = Stack::new(install_type);
    let db = stack.name("mariadb");
    let mc = stack.name("memcached");
    let ks = stack.name("keystone");

    // kolla_set_configs refuses a broken config.json with a clear message and exit status 1.
    let broken = work.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.json"), "{\"command\": ").unwrap();
    let bad = stack.start("broken", &image("memcached"), &broken, &[]);
    let (code, logs) = stack.wait_exit(&bad, Duration::from_secs(60));
    assert_eq!(code, 1, "a broken config.json fails the start:\n{logs}");
    assert!(logs.contains("is not valid JSON"), "{logs}");

    // mariadb: bootstrap over an empty data volume, then the server.
    let my_cnf = "[mysqld]\ndatadir = /var/lib/mysql\nbind-address = 0.0.0.0\nport = 3306\n\
                  socket = /run/mysqld/mysqld.sock\nskip-name-resolve\n\
                  character-set-server = utf8mb4\n\n[client]\nsocket = /run/mysqld/mysqld.sock\n";
    let db_config = config_dir(
        work.path(),
        "mariadb",
        &serde_json::json!({
            "command": "/usr/sbin/mariadbd",
            "config_files": [{
                "source": "/var/lib/kolla/config_files/my.cnf",
                "dest": "/etc/mysql/my.cnf",
                "owner": "mysql",
                "perm": "0600"
            }],
            "permissions": [{"path": "/var/log/kolla/mariadb", "owner": "mysql:mysql", "recurse": true}]
        }),
        &[("my.cnf", my_cnf.to_string())],
    );
    let data = stack.volume("mysql");
    let data_mount = format!("{data}:/var/lib/mysql");
    let boot = stack.start(
        "mariadb-bootstrap",
        &image("mariadb-server"),
        &db_config,
        &[
            "-v".into(),
            data_mount.clone(),
            "-e".into(),
            "KOLLA_BOOTSTRAP=".into(),
            "-e".into(),
            format!("DB_ROOT_PASSWORD={DB_ROOT_PASSWORD}"),
        ],
    );
    let (code, logs) = stack.wait_exit(&boot, Duration::from_secs(120));
    assert_eq!(code, 0, "mariadb bootstrap:\n{logs}");
    stack.start(
        "mariadb",
        &image("mariadb-server"),
        &db_config,
        &["-v".into(), data_mount],
    );

    let mc_config = config_dir(
        work.path(),
        "memcached",
        &serde_json::json!({"command": "memcached -v -l 0.0.0.0 -p 11211 -c 1024 -m 64", "config_files": []}),
        &[],
    );
    stack.start("memcached", &image("memcached"), &mc_config, &[]);

    let limit = Duration::from_secs(120);
    stack.wait_healthy(&db, &["healthcheck_listen", "mariadbd", "3306"], limit);
    stack.wait_healthy(
        &db,
        &["healthcheck_socket", "mariadbd", "/run/mysqld/mysqld.sock"],
        limit,
    );
    stack.wait_healthy(&mc, &["healthcheck_listen", "memcached", "11211"], limit);
    // A healthcheck that must fail: nothing listens on 1.
    assert!(
        !stack
            .exec(&mc, None, &["healthcheck_listen", "memcached", "1"])
            .status
            .success(),
        "healthcheck_listen fails for a port nobody listens on"
    );

    // The keystone database, as the deploy tool makes it (over the network, as root).
    let sql = format!(
        "CREATE DATABASE keystone; CREATE USER 'keystone'@'%' IDENTIFIED BY '{KEYSTONE_DB_PASSWORD}'; \
         GRANT ALL PRIVILEGES ON keystone.* TO 'keystone'@'%';"
    );
    stack.exec_ok(
        &db,
        None,
        &[
            "mariadb",
            "-h",
            &db,
            "-uroot",
            &format!("-p{DB_ROOT_PASSWORD}"),
            "-e",
            &sql,
        ],
    );

    // keystone: db_sync in a bootstrap container, then Apache with mod_wsgi.
    let keystone_conf = format!(
        "[DEFAULT]\nlog_file = /var/log/kolla/keystone/keystone.log\n\n\
         [database]\nconnection = mysql+pymysql://keystone:{KEYSTONE_DB_PASSWORD}@{db}:3306/keystone\n\n\
         [cache]\nenabled = true\nbackend = oslo_cache.memcache_pool\nmemcache_servers = {mc}:11211\n\n\
         [token]\nprovider = fernet\n\n\
         [fernet_tokens]\nkey_repository = /etc/keystone/fernet-keys\nmax_active_keys = 3\n"
    );
    let (script, python_home) = if install_type == "source" {
        (
            "/var/lib/kolla/venv/bin/keystone-wsgi-public",
            " python-home=/var/lib/kolla/venv",
        )
    } else {
        ("/usr/bin/keystone-wsgi-public", "")
    };
    let script_dir = Path::new(script).parent().unwrap().display().to_string();
    let wsgi_conf = format!(
        "Listen 5000\nServerName {ks}\nErrorLog /proc/self/fd/2\nLogLevel warn\n\n\
         <VirtualHost *:5000>\n\
         \x20   WSGIDaemonProcess keystone-public processes=2 threads=1 user=keystone group=keystone display-name=keystone-public{python_home}\n\
         \x20   WSGIProcessGroup keystone-public\n\
         \x20   WSGIScriptAlias / {script}\n\
         \x20   WSGIApplicationGroup %{{GLOBAL}}\n\
         \x20   WSGIPassAuthorization On\n\
         \x20   ErrorLog /proc/self/fd/2\n\
         \x20   <Directory {script_dir}>\n\
         \x20       Require all granted\n\
         \x20   </Directory>\n\
         </VirtualHost>\n"
    );
    let ks_config = config_dir(
        work.path(),
        "keystone",
        &serde_json::json!({
            "command": "/usr/sbin/apache2 -DFOREGROUND",
            "config_files": [
                {"source": "/var/lib/kolla/config_files/keystone.conf",
                 "dest": "/etc/keystone/keystone.conf", "owner": "keystone", "perm": "0600"},
                {"source": "/var/lib/kolla/config_files/wsgi-keystone.conf",
                 "dest": "/etc/apache2/conf-enabled/wsgi-keystone.conf", "owner": "keystone", "perm": "0600"},
                {"source": "/var/lib/kolla/config_files/absent-*.conf",
                 "dest": "/etc/keystone/", "owner": "keystone", "perm": "0600", "optional": true}
            ],
            "permissions": [
                {"path": "/etc/keystone/fernet-keys", "owner": "keystone:keystone", "perm": "0770", "recurse": true},
                {"path": "/var/log/kolla/keystone", "owner": "keystone:kolla", "recurse": true}
            ]
        }),
        &[
            ("keystone.conf", keystone_conf),
            ("wsgi-keystone.conf", wsgi_conf),
        ],
    );
    let fernet = stack.volume("fernet");
    let fernet_mount = format!("{fernet}:/etc/keystone/fernet-keys");
    let boot = stack.start(
        "keystone-bootstrap",
        &image("keystone"),
        &ks_config,
        &[
            "-v".into(),
            fernet_mount.clone(),
            "-e".into(),
            "KOLLA_BOOTSTRAP=".into(),
        ],
    );
    let (code, logs) = stack.wait_exit(&boot, Duration::from_secs(300));
    assert_eq!(code, 0, "keystone db_sync (KOLLA_BOOTSTRAP):\n{logs}");

    stack.start(
        "keystone",
        &image("keystone"),
        &ks_config,
        &["-v".into(), fernet_mount],
    );
    stack.wait_healthy(&ks, &["healthcheck_listen", "apache2", "5000"], limit);
    stack.exec_ok(
        &ks,
        Some("keystone"),
        &[
            "keystone-manage",
            "fernet_setup",
            "--keystone-user",
            "keystone",
            "--keystone-group",
            "keystone",
        ],
    );
    let v3 = format!("http://{ks}:5000/v3");
    stack.exec_ok(
        &ks,
        Some("keystone"),
        &[
            "keystone-manage",
            "bootstrap",
            "--bootstrap-password",
            ADMIN_PASSWORD,
            "--bootstrap-admin-url",
            &v3,
            "--bootstrap-internal-url",
            &v3,
            "--bootstrap-public-url",
            &v3,
            "--bootstrap-region-id",
            "RegionOne",
        ],
    );
    stack.wait_healthy(&ks, &["healthcheck_curl", &v3], limit);

    let (status, headers) = curl(&stack, &ks, &[&v3]);
    assert_eq!(status, 200, "GET /v3:\n{headers}");
    let auth = serde_json::json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": ADMIN_PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    .to_string();
    let tokens = format!("{v3}/auth/tokens");
    let (status, headers) = curl(
        &stack,
        &ks,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &auth,
            &tokens,
        ],
    );
    assert_eq!(
        status,
        201,
        "POST /v3/auth/tokens:\n{headers}\nlogs:\n{}",
        stack.logs(&ks)
    );
    let token = headers
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-subject-token")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    assert!(token.len() > 20, "an X-Subject-Token: {headers}");
    // The token is valid: keystone validates it (GET /v3/auth/tokens).
    let (status, headers) = curl(
        &stack,
        &ks,
        &[
            "-H",
            &format!("X-Auth-Token: {token}"),
            "-H",
            &format!("X-Subject-Token: {token}"),
            &tokens,
        ],
    );
    assert_eq!(status, 200, "validating the token:\n{headers}");

    // keystone's WSGI daemons keep pooled connections to the database and to memcached. The
    // checks run as the images' users (mysql, memcached): `ss -p` shows the sockets of the
    // caller's own processes only, as root lacks CAP_SYS_PTRACE in a container.
    stack.wait_healthy(&db, &["healthcheck_port", "mariadbd", "3306"], limit);
    stack.wait_healthy(&mc, &["healthcheck_port", "memcached", "11211"], limit);
    let user = stack.exec_ok(&mc, None, &["id", "-un"]);
    assert_eq!(user.trim(), "memcached", "memcached runs as its user");

    eprintln!("e2e {install_type}: passed in {:?}", started.elapsed());
}

#[test]
fn debian_binary_mariadb_memcached_keystone_run_and_issue_a_token() {
    keystone_runs("binary");
}

#[test]
fn debian_source_mariadb_memcached_keystone_run_and_issue_a_token() {
    keystone_runs("source");
}
