//! kolla-ansible 20.x, the 2025.1 deployer, is the contract: images built by the tool must work
//! when kolla-ansible runs them. For debian binary and debian source of our tree, and for the
//! images built from kolla 20.6.0's own tree (tests/kolla_tree.rs calls
//! `kolla_trees_deployment`, with kolla-toolbox, mariadb, memcached and rabbitmq of our
//! tree), this test
//!
//! 1. renders kolla-ansible's own configuration for an all-in-one node on the loopback
//!    interface (scripts/kolla-ansible-render.sh: kolla-ansible from PyPI in a virtualenv, its
//!    roles' `config` tasks with their defaults and group_vars, our
//!    tests/kolla-ansible/globals.yml), including the container definitions (image,
//!    environment, volumes, healthcheck) of every service, as JSON;
//! 2. builds the images with the tool (kolla-toolbox, mariadb-server, memcached and rabbitmq as
//!    binary images for every deployment: kolla has no install type for them and our tree renders
//!    them alike for both, so the source deployment retags the binary ones, as kolla's does);
//! 3. deploys kolla-toolbox, mariadb, memcached, rabbitmq, keystone (with keystone-ssh and
//!    keystone-fernet), glance-api, placement-api, nova-api and, for our tree, nova-scheduler and
//!    nova's cell (its database, schema and mapping, nova-conductor, a nova-compute with nova's
//!    FakeDriver), neutron-server, heat (heat-api, heat-api-cfn, heat-engine) and horizon the way
//!    kolla-ansible's tasks and handlers do: the same
//!    one-shot bootstrap containers with the same environment (KOLLA_BOOTSTRAP, KOLLA_UPGRADE,
//!    BOOTSTRAP_ARGS, DB_ROOT_PASSWORD, DB_MAX_TIMEOUT, KOLLA_SERVICE_NAME,
//!    KOLLA_CONFIG_STRATEGY=COPY_ALWAYS), the same volumes, no `--user`, the same `docker exec`
//!    calls (kolla_keystone_bootstrap, fernet-push.sh, rabbitmqctl wait, map_cell0 and the cell
//!    commands through `sudo -E kolla_set_configs`), and kolla-ansible's
//!    healthcheck commands as the containers' Docker healthchecks;
//! 4. checks an admin token, the catalog, `GET /v2/images` on glance, placement's root and
//!    `GET /v2.1/flavors` on nova with the token; for our tree, the fake compute's resource
//!    provider and inventory in placement, its discovery into the cell (kolla-ansible's
//!    wait_discover_computes.yml and discover_computes.yml), the scheduler's cell cache
//!    refreshed (SIGHUP), and conductor, scheduler and compute up in `openstack compute service
//!    list`; then a server booted on the fake compute (an image uploaded to glance, a flavor,
//!    `server create --nic none` until ACTIVE, its allocation in placement), a network and a
//!    subnet made in neutron, heat's stack domain usable and a stack of one
//!    `OS::Heat::RandomString` created, and horizon logged into by headless Chromium.
//!
//! What kolla-ansible does through its kolla_toolbox container (the common role starts it
//! first), kolla-ansible does here too: the tasks of its roles that call its `kolla_toolbox`
//! module (mysql_user for mariadb's shard root and monitor users, mysql_db and mysql_user for
//! every service database, mysql_variables around glance's migrations, and service-ks-register's
//! openstack.cloud modules for the services, endpoints, projects, users and roles), taken from
//! the installed kolla-ansible's task files and run by ansible-playbook with kolla-ansible's own
//! module, which `docker exec`s ansible in our kolla-toolbox image and parses its JSON
//! (scripts/kolla-ansible-toolbox.sh). The first run of each step must succeed and change
//! something; in the debian binary deployment each step runs a second time, which must change
//! nothing (`Scope::toolbox_reruns`). The test itself makes no SQL or Keystone call for them.
//!
//! Host differences, each kept as small as possible: the containers share one network namespace
//! that only has a loopback interface (a holder container with `--network none` and the node's
//! host name), instead of the host's network; named volumes get a per-run prefix; Docker runs
//! the healthchecks every 5 s instead of kolla-ansible's 30 s; `--ulimit nofile=1048576` is left
//! out (the sandbox refuses it); a `privileged` container (kolla_toolbox, nova-api, the compute)
//! gets every capability but CAP_SYS_RESOURCE with seccomp and AppArmor unconfined (the sandbox
//! refuses `--privileged`); the fake compute's config directory gets the files kolla-ansible's
//! fake path forgets (docs/RUNTIME.md). Every wait is bounded; containers, volumes and images go
//! away even when a step fails.
//!
//! `deploy` is the specification: kolla-ansible's steps in its order, each a function of its own
//! over a shared `Deployment` (the node, its rendered configuration).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::engine::{Namespace, debian_args_in, engine_lock, kolla_build};
use crate::support::REPO;

/// The label the engine tests' leak check ignores (see tests/engine.rs).
const LABEL: &str = "org.kolla-build.test=e2e";
const TAG: &str = "2025.1";
/// kolla-ansible 20.x deploys OpenStack 2025.1: the images must hold that release (the release
/// table, base/releases.toml, gives its base and repositories).
const RELEASE_ARGS: [&str; 2] = ["--openstack-release", "2025.1"];
/// The infrastructure images kolla-ansible deploys beside OpenStack's: kolla has no install
/// type for them, and our tree renders them the same for binary and source (only the base's
/// `KOLLA_INSTALL_TYPE` differs), so every deployment runs the binary ones.
const INFRA: [&str; 4] = ["kolla-toolbox", "mariadb-server", "memcached", "rabbitmq"];
/// The OpenStack images, built for the deployment's install type.
const OPENSTACK: [&str; 14] = [
    "keystone",
    "keystone-fernet",
    "keystone-ssh",
    "glance-api",
    "placement-api",
    "nova-api",
    "nova-scheduler",
    "nova-conductor",
    "nova-compute",
    "neutron-server",
    "heat-api",
    "heat-api-cfn",
    "heat-engine",
    "horizon",
];
const NEUTRON_SERVER_LOG: &str = "/var/log/kolla/neutron/neutron-server.log";
const HEAT_LOGS: [&str; 4] = [
    "/var/log/kolla/heat/heat-engine.log",
    "/var/log/kolla/heat/heat-api-error.log",
    "/var/log/kolla/heat/heat-api-cfn-error.log",
    "/var/log/kolla/heat/apache-error.log",
];
const BOOT_LIMIT: Duration = Duration::from_secs(300);
const HEALTH_LIMIT: Duration = Duration::from_secs(180);

#[test]
fn debian_binary_runs_under_kolla_ansible() {
    deploy_and_check("binary");
}

#[test]
fn debian_source_runs_under_kolla_ansible() {
    deploy_and_check("source");
}

/// What kolla-ansible does through kolla_toolbox, the test leaves to kolla_toolbox: its own
/// source holds no SQL that creates databases, users or grants or sets server variables, and no
/// Keystone write; and every role task file kolla-ansible's deploy runs through the toolbox for
/// these services is a kolla_toolbox step.
#[test]
fn the_test_leaves_kolla_toolbox_s_work_to_it() {
    let source = std::fs::read_to_string(Path::new(REPO).join("tests/kolla_ansible.rs")).unwrap();
    // Built from pieces, so that this list does not match itself.
    let forbidden = [
        ["CREATE ", "DATABASE"],
        ["CREATE ", "USER"],
        ["GRANT ", "ALL"],
        ["SET ", "GLOBAL"],
        ["\"/serv", "ices\""],
        ["\"/endp", "oints\""],
        ["\"/use", "rs\""],
        ["\"/proj", "ects\""],
        ["\"/role", "s?name"],
    ]
    .map(|pieces| pieces.concat());
    let found: Vec<&String> = forbidden.iter().filter(|f| source.contains(*f)).collect();
    assert!(
        found.is_empty(),
        "tests/kolla_ansible.rs does {found:?} itself"
    );
    for step in [
        "mariadb:register.yml",
        "keystone:bootstrap.yml",
        "keystone:register.yml",
        "glance:bootstrap.yml",
        "glance:bootstrap_service.yml:Enable",
        "glance:bootstrap_service.yml:Disable",
        "glance:register.yml",
        "placement:bootstrap.yml",
        "placement:register.yml",
        "nova:bootstrap.yml",
        "nova-cell:bootstrap.yml",
        "nova:register.yml",
        "neutron:register.yml",
        "neutron:bootstrap.yml",
        "heat:register.yml",
        "heat:bootstrap.yml",
    ] {
        assert!(
            source.contains(&format!("\"{step}")),
            "no kolla_toolbox step {step}"
        );
    }
}

/// Our tree's images, built here for one install type.
fn deploy_and_check(install_type: &str) {
    let started = Instant::now();
    let ns = Namespace::new(&format!("ka-{install_type}"));
    let naming = ImageNaming {
        namespace: ns.0.clone(),
        prefix: format!("debian-{install_type}-"),
        tag: TAG.to_string(),
    };
    let scope = Scope {
        cloud: true,
        toolbox_reruns: install_type == "binary",
    };
    let config = render_kolla_ansible_config(install_type, &naming, scope);
    let _engine = engine_lock();
    build_the_infra_images(&config, &naming);
    build_our_images(&config, install_type, &naming, &OPENSTACK);
    deploy(config);
    eprintln!(
        "kolla-ansible {install_type}: {:.0?} in all",
        started.elapsed()
    );
}

/// kolla-ansible's configuration for kolla's own tree's images (tests/kolla_tree.rs builds
/// keystone, glance-api, placement-api and nova-api with kolla's names into `namespace`, tagged
/// `tag`), rendered before that test takes the engine: rendering needs none. kolla's selection
/// there holds no kolla-toolbox (kolla's installs its collections from Galaxy, out of reach
/// here), mariadb, memcached or rabbitmq: those come from our tree, given the names
/// kolla-ansible looks for (`<namespace>/<image>:<tag>`, no prefix) by a `docker tag`, as a site
/// mixing two trees retags before it deploys. It stops at nova-api (no cell).
pub(crate) fn kolla_trees_deployment(namespace: &str, tag: &str) -> KollaTreesDeployment {
    let naming = ImageNaming {
        namespace: namespace.to_string(),
        prefix: String::new(),
        tag: tag.to_string(),
    };
    let scope = Scope {
        cloud: false,
        toolbox_reruns: false,
    };
    let config = render_kolla_ansible_config("kolla-tree", &naming, scope);
    KollaTreesDeployment { config, naming }
}

/// A rendered deployment of kolla's tree's images, waiting for them to be built.
pub(crate) struct KollaTreesDeployment {
    config: Config,
    naming: ImageNaming,
}

impl KollaTreesDeployment {
    /// Builds our infrastructure images and deploys. The caller holds the engine lock.
    pub(crate) fn deploy(self) {
        build_the_infra_images(&self.config, &self.naming);
        deploy(self.config);
    }
}

/// Runs one step of `deploy` and says how long it took (where a run's time goes).
macro_rules! step {
    ($d:ident, $step:ident $(, $arg:expr)*) => {{
        let started = Instant::now();
        let result = $step(&$d $(, $arg)*);
        eprintln!(
            "kolla-ansible {}: {} took {:.1?}",
            $d.config.label,
            stringify!($step),
            started.elapsed()
        );
        result
    }};
}

/// The specification: kolla-ansible's steps, in its order, each a function below.
fn deploy(config: Config) {
    let deployed = Instant::now();
    let label = config.label.clone();
    let d = start_node(config);

    step!(d, start_kolla_toolbox);
    step!(d, bootstrap_mariadb_cluster);
    step!(d, restart_mariadb_as_a_service);
    step!(d, start_memcached);
    step!(d, check_a_broken_config_json_stops_its_container);
    step!(d, start_rabbitmq);
    step!(d, start_keystone);
    step!(d, bootstrap_keystone_twice);
    step!(d, register_keystone_glance_placement_and_nova);
    let token = step!(d, get_an_admin_token);
    step!(d, check_the_catalog, &token);
    step!(d, start_glance);
    step!(d, start_placement);
    // nova.yml's plays: the API's and the cell's databases (the cell mapped before any nova
    // service starts: nova-api and the scheduler cache the cell list), role nova's services,
    // role nova-cell's, the compute's discovery, the scheduler's cell cache refreshed.
    step!(d, bootstrap_nova_api);
    if d.config.scope.cloud {
        step!(d, bootstrap_nova_cell);
    }
    step!(d, start_nova_api);
    if d.config.scope.cloud {
        step!(d, start_nova_scheduler);
        step!(d, start_nova_cell_services);
    }
    step!(d, wait_until_the_services_are_healthy);
    step!(d, check_the_other_healthcheck_scripts);
    step!(d, check_glance_api, &token);
    step!(d, check_placement_api, &token);
    step!(d, check_nova_api, &token);
    if d.config.scope.cloud {
        step!(d, check_the_fake_compute_in_placement, &token);
        step!(d, discover_the_compute);
        step!(d, refresh_the_scheduler_s_cell_cache);
        step!(d, check_nova_s_services_are_up);
        // site.yml's "Apply role neutron" comes after nova.yml.
        step!(d, start_neutron_server);
        step!(d, boot_a_server, &token);
        step!(d, create_a_network_and_a_subnet);
        // "Apply role heat" follows neutron.
        step!(d, start_heat);
        step!(d, create_a_stack);
        // "Apply role horizon" follows heat.
        step!(d, start_horizon);
        step!(d, log_into_horizon_in_a_browser);
    }
    step!(d, rotate_the_fernet_keys, &token);
    step!(d, upgrade_to_the_same_images);
    step!(d, check_the_log_files_and_their_owners);
    step!(d, check_the_custom_ca_is_trusted);
    step!(d, check_the_containers_run_as_the_images_users);
    step!(d, check_privileged_containers_get_what_the_sandbox_allows);

    eprintln!(
        "kolla-ansible {label}: services deployed and checked in {:.0?}",
        deployed.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// The steps.

/// kolla-ansible's configuration for an all-in-one node whose images are named by `naming`
/// (scripts/kolla-ansible-render.sh).
fn render_kolla_ansible_config(label: &str, naming: &ImageNaming, scope: Scope) -> Config {
    let work = tempfile::tempdir().unwrap();
    let rendered = Rendered::render(&work.path().join("kolla"), label, naming);
    Config {
        label: label.to_string(),
        work,
        rendered,
        scope,
    }
}

/// [`INFRA`] of our tree, built as binary images (the layer cache shares them between the
/// deployments of one test run) and given the names `naming` makes for the deployment, as a
/// site retags images it takes from another build. Their own names stay in the deployment's
/// namespace, so they go with it.
fn build_the_infra_images(config: &Config, naming: &ImageNaming) {
    let binary = ImageNaming {
        namespace: naming.namespace.clone(),
        prefix: "debian-binary-".into(),
        tag: TAG.to_string(),
    };
    build_our_images(config, "binary", &binary, &INFRA);
    for image in INFRA {
        if binary.reference(image) != naming.reference(image) {
            docker_ok(&["tag", &binary.reference(image), &naming.reference(image)]);
        }
    }
}

/// Builds `images` (exact names) of our tree with the tool, for the release kolla-ansible deploys.
fn build_our_images(config: &Config, install_type: &str, naming: &ImageNaming, images: &[&str]) {
    let built = Instant::now();
    let mut args = debian_args_in(install_type, &naming.namespace);
    args.extend(RELEASE_ARGS.map(String::from));
    args.extend(["--image-name-prefix".to_string(), naming.prefix.clone()]);
    args.extend(["--tag".to_string(), naming.tag.clone()]);
    args.extend(images.iter().map(|i| format!("^{i}$")));
    let build = kolla_build(config.work.path(), &args);
    assert_eq!(build.code, Some(0), "build failed:\n{}", build.stderr);
    eprintln!(
        "kolla-ansible {}: images built in {:.0?}",
        config.label,
        built.elapsed()
    );
}

/// The node the services run on: a network namespace with kolla-ansible's host name.
fn start_node(config: Config) -> Deployment {
    let node = Node::new(
        &config.label,
        &config.rendered.str("hostname"),
        config.rendered.service("mariadb", "mariadb")["image"]
            .as_str()
            .unwrap(),
    );
    Deployment {
        node,
        root_password: config.rendered.str("database_password"),
        config,
    }
}

/// mariadb (roles/mariadb: bootstrap_cluster.yml): the bootstrap container initialises the
/// data volume, then the first node of a new cluster starts with
/// BOOTSTRAP_ARGS=--wsrep-new-cluster.
fn bootstrap_mariadb_cluster(d: &Deployment) {
    let mariadb = d.service("mariadb", "mariadb");
    let max_timeout = d.config.rendered.doc["database_max_timeout"].to_string();
    d.node.one_shot(Run {
        name: "bootstrap_mariadb",
        image: image_of(mariadb),
        env: vec![
            ("KOLLA_BOOTSTRAP".into(), String::new()),
            ("DB_ROOT_PASSWORD".into(), d.root_password.clone()),
            (
                "DB_MAX_TIMEOUT".into(),
                max_timeout.trim_matches('"').into(),
            ),
        ],
        volumes: strings(&mariadb["volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
    d.node.start(Run {
        name: "mariadb",
        image: image_of(mariadb),
        env: vec![("BOOTSTRAP_ARGS".into(), "--wsrep-new-cluster".into())],
        volumes: strings(&mariadb["volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
    wait_for_mariadb(d, "first mariadb");
    let processes = d.node.exec_ok("mariadb", &["pgrep", "-af", "mariadbd"]);
    assert!(
        processes.contains("--wsrep-new-cluster"),
        "BOOTSTRAP_ARGS reach mariadbd:\n{processes}"
    );
}

/// The handler then restarts mariadb as the service proper (no BOOTSTRAP_ARGS, the service's
/// environment and healthcheck), and register.yml adds the shard root user the services' tasks
/// log in with and the monitor user clustercheck uses.
fn restart_mariadb_as_a_service(d: &Deployment) {
    d.node.remove("mariadb");
    d.node
        .start(service_run("mariadb", d.service("mariadb", "mariadb")));
    wait_for_mariadb(d, "mariadb");
    kolla_toolbox_steps(d, &["mariadb:register.yml"]);
    d.node.wait_healthy("mariadb");
    let check = d.node.exec_ok("mariadb", &["/usr/bin/clustercheck"]);
    assert!(check.starts_with("HTTP/1.1 200"), "{check}");
}

fn start_memcached(d: &Deployment) {
    d.node.start(service_run(
        "memcached",
        d.service("memcached", "memcached"),
    ));
}

/// kolla_set_configs refuses a broken config.json with a clear message and exit status 1,
/// which stops the container.
fn check_a_broken_config_json_stops_its_container(d: &Deployment) {
    let broken = d.config.work.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("config.json"), "{\"command\": ").unwrap();
    let name = d.node.start(Run {
        name: "broken",
        image: image_of(d.service("memcached", "memcached")),
        volumes: vec![format!(
            "{}:/var/lib/kolla/config_files/:ro",
            broken.display()
        )],
        ..Run::default()
    });
    let mut status = String::new();
    wait_for(
        "a container with a broken config.json exits",
        BOOT_LIMIT,
        || {
            status = docker_ok(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                &name,
            ]);
            if status.starts_with("exited") {
                Ok(())
            } else {
                Err(status.clone())
            }
        },
    );
    let logs = d.node.logs(&name);
    assert_eq!(status.trim(), "exited 1", "{logs}");
    assert!(logs.contains("is not valid JSON"), "{logs}");
}

/// rabbitmq (roles/rabbitmq: bootstrap.yml, restart_services.yml, post-deploy).
fn start_rabbitmq(d: &Deployment) {
    let rabbitmq = d.service("rabbitmq", "rabbitmq");
    d.node.one_shot(Run {
        name: "rabbitmq_bootstrap",
        image: image_of(rabbitmq),
        env: env_of(&rabbitmq["bootstrap_environment"]),
        volumes: strings(&rabbitmq["volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
    d.node.start(service_run("rabbitmq", rabbitmq));
    d.node.exec_ok(
        "rabbitmq",
        &[
            "rabbitmqctl",
            "wait",
            "--timeout",
            "60",
            "/var/lib/rabbitmq/mnesia/rabbitmq.pid",
        ],
    );
    d.node
        .exec_ok("rabbitmq", &["rabbitmqctl", "enable_feature_flag", "all"]);
}

/// keystone (roles/keystone: bootstrap.yml, bootstrap_service.yml, handlers,
/// distribute_fernet.yml): the database, the bootstrap containers, keystone-ssh,
/// keystone-fernet (its keys pushed) and keystone, each healthy.
fn start_keystone(d: &Deployment) {
    kolla_toolbox_steps(d, &["keystone:bootstrap.yml"]);
    let keystone = d.service("keystone", "keystone");
    let fernet = d.service("keystone", "keystone-fernet");
    let ssh = d.service("keystone", "keystone-ssh");
    d.node.one_shot(Run {
        name: "bootstrap_keystone",
        image: image_of(keystone),
        env: vec![("KOLLA_BOOTSTRAP".into(), String::new())],
        volumes: strings(&keystone["volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
    d.node.one_shot(Run {
        name: "bootstrap_keystone_fernet",
        image: image_of(fernet),
        volumes: strings(&fernet["volumes"]),
        bootstrap_label: true,
        command: [
            "bash",
            "-c",
            "sudo -E kolla_set_configs && keystone-manage --config-file /etc/keystone/keystone.conf \
             fernet_setup --keystone-user keystone --keystone-group keystone",
        ]
        .map(String::from)
        .to_vec(),
        ..Run::default()
    });
    d.node.start(service_run("keystone_ssh", ssh));
    d.node.start(service_run("keystone_fernet", fernet));
    d.node.start(service_run("keystone", keystone));
    d.node.wait_healthy("keystone_ssh");
    d.node
        .exec_ok("keystone_fernet", &["/usr/bin/fernet-push.sh"]);
    d.node.wait_healthy("keystone_fernet");
    d.node.wait_healthy("keystone");
}

/// register.yml's kolla_keystone_bootstrap: the admin user, project, role and endpoints; a
/// second run finds them there and must not fail.
fn bootstrap_keystone_twice(d: &Deployment) {
    let auth = &d.config.rendered.doc["openstack_auth"];
    let urls = &d.config.rendered.doc["urls"];
    let region = d.config.rendered.str("openstack_region_name");
    let bootstrap = |round: &str| -> Value {
        let out = d.node.exec_ok(
            "keystone",
            &[
                "kolla_keystone_bootstrap",
                auth["username"].as_str().unwrap(),
                auth["password"].as_str().unwrap(),
                auth["project_name"].as_str().unwrap(),
                "admin",
                &d.url("keystone_internal"),
                urls["keystone_public"].as_str().unwrap(),
                &region,
            ],
        );
        serde_json::from_str(out.trim()).unwrap_or_else(|e| {
            panic!("kolla_keystone_bootstrap ({round}) prints JSON: {e}\n{out}")
        })
    };
    let first = bootstrap("first run");
    assert_eq!(first["failed"], json!(false), "{first}");
    assert_eq!(first["changed"], json!(true), "{first}");
    let second = bootstrap("second run");
    assert_eq!(second["failed"], json!(false), "{second}");
    assert!(second["changed"].is_boolean(), "{second}");
}

/// An admin token for the password of kolla-ansible's `openstack_auth`.
fn get_an_admin_token(d: &Deployment) -> String {
    let auth = &d.config.rendered.doc["openstack_auth"];
    let auth_body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"name": auth["user_domain_name"]},
            "password": auth["password"]}}},
        "scope": {"project": {"name": auth["project_name"],
                              "domain": {"name": auth["domain_name"]}}}}})
    .to_string();
    let (status, headers, body) = post_to_the_tokens_url(d, &auth_body);
    assert_eq!(status, 201, "POST /v3/auth/tokens:\n{headers}\n{body}");
    headers
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-subject-token")
                .then(|| value.trim().to_string())
        })
        .expect("an X-Subject-Token")
}

/// `POST /v3/auth/tokens` with a JSON `auth` body (a login: no keystone write); status, headers,
/// body.
fn post_to_the_tokens_url(d: &Deployment, auth_body: &str) -> (u32, String, String) {
    http(
        &d.node,
        "keystone",
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            auth_body,
            &d.tokens_url(),
        ],
    )
}

/// keystone's register.yml (its services through service-ks-register, the default user role)
/// and service-ks-register for glance, placement and nova: the service project, the users with
/// their roles, the services and their endpoints.
fn register_keystone_glance_placement_and_nova(d: &Deployment) {
    kolla_toolbox_steps(
        d,
        &[
            "keystone:register.yml",
            "glance:register.yml",
            "placement:register.yml",
            "nova:register.yml",
        ],
    );
}

/// The common role's kolla_toolbox container, started before anything else as kolla-ansible's
/// site.yml does; its config.json runs the image's `kolla_toolbox` command.
fn start_kolla_toolbox(d: &Deployment) {
    let toolbox = d.service("common", "kolla-toolbox");
    d.node.start(service_run("kolla_toolbox", toolbox));
    wait_for("kolla_toolbox runs its command", HEALTH_LIMIT, || {
        let out = d
            .node
            .exec("kolla_toolbox", &["pgrep", "-f", "kolla_toolbox"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(d.node.logs(&d.node.name("kolla_toolbox")))
        }
    });
}

/// kolla-ansible's kolla_toolbox tasks of `steps` (`role:tasks_file[:task name]`, see
/// scripts/kolla-ansible-toolbox.sh): the first run must succeed and change something; where the
/// scope says so, a second run must succeed and change nothing (the modules are idempotent, as
/// kolla-ansible's reruns and upgrades rely on).
fn kolla_toolbox_steps(d: &Deployment, steps: &[&str]) {
    let first = kolla_toolbox(d, steps);
    assert!(
        first.iter().any(|t| t.changed),
        "kolla_toolbox {steps:?}: the first run changed nothing: {first:#?}"
    );
    let rerun = if d.config.scope.toolbox_reruns {
        let second = kolla_toolbox(d, steps);
        let changed: Vec<_> = second.iter().filter(|t| t.changed).collect();
        assert!(
            changed.is_empty(),
            "kolla_toolbox {steps:?}: the second run changed {changed:#?}"
        );
        let rewrites: usize = second.iter().map(|t| t.password_rewrites).sum();
        format!("none on the second ({rewrites} passwords set again by design)")
    } else {
        "no second run (Scope::toolbox_reruns)".to_string()
    };
    let skipped: Vec<&str> = first
        .iter()
        .filter(|t| t.skipped)
        .map(|t| t.name.as_str())
        .collect();
    eprintln!(
        "kolla_toolbox {steps:?}: {} tasks, {} changed on the first run, {rerun}; skipped by \
         their `when`: {skipped:?}",
        first.len(),
        first.iter().filter(|t| t.changed).count(),
    );
}

/// One kolla_toolbox task's result in ansible-playbook's JSON report.
#[derive(Debug)]
struct ToolboxTask {
    name: String,
    /// Whether the task changed something, leaving out the items that set a password on every
    /// run by design (see `rewrites_a_password`).
    changed: bool,
    skipped: bool,
    /// Items that set a user's password again (changed by design).
    password_rewrites: usize,
}

/// openstack.cloud's identity_user with `update_password: always` (kolla-ansible's default,
/// `update_keystone_service_user_passwords: true`) sets the service user's password on every
/// run and reports `changed` each time: not a lack of idempotency. (The result carries the
/// module's own arguments; `default_project` is identity_user's. mysql_user's
/// `update_password: always` compares the hash and changes nothing when it matches.)
fn rewrites_a_password(item: &Value) -> bool {
    let args = &item["invocation"]["module_args"];
    args["update_password"] == "always" && args.get("default_project").is_some()
}

/// Runs the kolla_toolbox tasks of `steps` once; every task that ran must have succeeded
/// (else the test fails with the module's message, the container's log and ansible.log's tail)
/// and at least one must have run per step.
fn kolla_toolbox(d: &Deployment, steps: &[&str]) -> Vec<ToolboxTask> {
    // kolla-ansible's module takes the first running container whose name contains
    // kolla_toolbox: it must be this node's.
    let running = docker_ok(&[
        "ps",
        "--filter",
        "name=kolla_toolbox",
        "--filter",
        "status=running",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(
        running.trim(),
        d.node.name("kolla_toolbox"),
        "the one running kolla_toolbox container must be this node's (is another deployment \
         running on this engine?)"
    );
    let out = Command::new("bash")
        .arg(Path::new(REPO).join("scripts/kolla-ansible-toolbox.sh"))
        .arg(&d.config.rendered.dir)
        .args(steps)
        .output()
        .expect("run scripts/kolla-ansible-toolbox.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "kolla_toolbox {steps:?}: no JSON report ({e}):\n{}",
            text(&out)
        )
    });
    let diagnose = || {
        let log = d.node.exec(
            "kolla_toolbox",
            &["tail", "-n", "40", "/var/log/kolla/ansible.log"],
        );
        format!(
            "container log:\n{}\nansible.log:\n{}",
            d.node.logs(&d.node.name("kolla_toolbox")),
            text(&log)
        )
    };
    let mut tasks = Vec::new();
    let mut plays = 0;
    for play in report["plays"].as_array().into_iter().flatten() {
        // The steps' plays; kolla-ansible's fact gathering comes first.
        let step = play["play"]["name"].as_str().unwrap_or_default();
        if !steps.contains(&step) {
            continue;
        }
        plays += 1;
        let mut ran = 0;
        for task in play["tasks"].as_array().into_iter().flatten() {
            let result = &task["hosts"]["localhost"];
            if result["action"] != "kolla_toolbox" {
                continue;
            }
            let name = task["task"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                result["failed"] != json!(true),
                "kolla_toolbox {step} / {name} failed: {result:#}\n{}",
                diagnose()
            );
            let skipped = result["skipped"] == json!(true);
            ran += usize::from(!skipped);
            let items: Vec<&Value> = match result["results"].as_array() {
                Some(items) => items.iter().collect(),
                None => vec![result],
            };
            let changed: Vec<&&Value> = items
                .iter()
                .filter(|i| i["changed"] == json!(true))
                .collect();
            let password_rewrites = changed.iter().filter(|i| rewrites_a_password(i)).count();
            tasks.push(ToolboxTask {
                name: format!("{step} / {name}"),
                changed: changed.len() > password_rewrites,
                skipped,
                password_rewrites,
            });
        }
        assert!(ran > 0, "kolla_toolbox {step}: no task ran: {tasks:#?}");
    }
    assert!(
        out.status.success(),
        "kolla_toolbox {steps:?}: ansible-playbook failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        diagnose()
    );
    assert_eq!(plays, steps.len(), "one play per step: {report:#}");
    tasks
}

fn check_the_catalog(d: &Deployment, token: &str) {
    let v3 = format!("{}/v3", d.url("keystone_internal"));
    let catalog = keystone_api(&d.node, token, "GET", &format!("{v3}/auth/catalog"), None);
    let types: Vec<&str> = catalog["catalog"]
        .as_array()
        .map(|c| c.iter().filter_map(|s| s["type"].as_str()).collect())
        .unwrap_or_default();
    for kind in ["identity", "image", "placement", "compute"] {
        assert!(types.contains(&kind), "{kind} in the catalog: {catalog}");
    }
}

/// glance (roles/glance: bootstrap_service.yml), its migrations allowed to create triggers.
fn start_glance(d: &Deployment) {
    kolla_toolbox_steps(d, &["glance:bootstrap.yml"]);
    kolla_toolbox_steps(
        d,
        &["glance:bootstrap_service.yml:Enable log_bin_trust_function_creators function"],
    );
    let glance = d.service("glance", "glance-api");
    d.node.one_shot(Run {
        name: "bootstrap_glance",
        image: image_of(glance),
        env: vec![("KOLLA_BOOTSTRAP".into(), String::new())],
        volumes: strings(&glance["volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
    kolla_toolbox_steps(
        d,
        &["glance:bootstrap_service.yml:Disable log_bin_trust_function_creators function"],
    );
    d.node.start(service_run("glance_api", glance));
}

/// placement (roles/placement: bootstrap_service.yml).
fn start_placement(d: &Deployment) {
    kolla_toolbox_steps(d, &["placement:bootstrap.yml"]);
    let placement = d.service("placement", "placement-api");
    d.node.one_shot(Run {
        name: "bootstrap_placement",
        image: image_of(placement),
        env: vec![("KOLLA_BOOTSTRAP".into(), String::new())],
        volumes: strings(&placement["volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
    d.node.start(service_run("placement_api", placement));
}

/// nova.yml's "Bootstrap nova API databases" (roles/nova: bootstrap.yml, bootstrap_service.yml,
/// map_cell0.yml).
fn bootstrap_nova_api(d: &Deployment) {
    kolla_toolbox_steps(d, &["nova:bootstrap.yml"]);
    let nova = d.service("nova", "nova-api");
    let bootstrap_volumes = strings(&d.config.rendered.doc["volumes"]["nova_api_bootstrap"]);
    d.node.one_shot(Run {
        name: "nova_api_bootstrap",
        image: image_of(nova),
        env: vec![("KOLLA_UPGRADE".into(), String::new())],
        volumes: bootstrap_volumes.clone(),
        bootstrap_label: true,
        ..Run::default()
    });
    let map_cell0 = format!(
        "sudo -E kolla_set_configs && nova-manage cell_v2 map_cell0 --database_connection {}",
        d.config.rendered.str("nova_cell0_connection")
    );
    d.node.one_shot(Run {
        name: "nova_api_map_cell0",
        image: image_of(nova),
        volumes: bootstrap_volumes,
        bootstrap_label: true,
        command: vec!["bash".into(), "-c".into(), map_cell0],
        ..Run::default()
    });
}

/// nova-api (role nova's handler).
fn start_nova_api(d: &Deployment) {
    d.node
        .start(service_run("nova_api", d.service("nova", "nova-api")));
}

/// nova-scheduler (roles/nova: its service container).
fn start_nova_scheduler(d: &Deployment) {
    d.node.start(service_run(
        "nova_scheduler",
        d.service("nova", "nova-scheduler"),
    ));
}

/// nova.yml's "Bootstrap nova cell databases" (roles/nova-cell: bootstrap.yml,
/// bootstrap_service.yml, create_cells.yml): the cell database through kolla_toolbox, its
/// schema, the cell mapping `nova-manage cell_v2 create_cell` makes (once: a second
/// `list_cells` finds it, with its uuid).
fn bootstrap_nova_cell(d: &Deployment) {
    kolla_toolbox_steps(d, &["nova-cell:bootstrap.yml"]);
    let cell = &d.config.rendered.doc["cell"];
    let conductor = d.service("nova_cell", "nova-conductor");
    d.node.one_shot(Run {
        name: "nova_cell_bootstrap",
        image: image_of(conductor),
        env: vec![("KOLLA_UPGRADE".into(), String::new())],
        volumes: strings(&cell["bootstrap_volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
    let cells = nova_manage_cell_v2(d, "nova_list_cells", "list_cells --verbose");
    assert!(
        cell_uuid(&cells).is_none(),
        "a new deployment has no cell yet:\n{cells}"
    );
    nova_manage_cell_v2(d, "create_cell_nova", "create_cell");
    let cells = nova_manage_cell_v2(d, "nova_list_cells", "list_cells --verbose");
    assert!(
        cell_uuid(&cells).is_some(),
        "create_cell made no cell:\n{cells}"
    );
}

/// Role nova-cell's services: nova-conductor and config-nova-fake.yml's nova_compute_fake_1 with
/// nova's FakeDriver.
fn start_nova_cell_services(d: &Deployment) {
    d.node.start(service_run(
        "nova_conductor",
        d.service("nova_cell", "nova-conductor"),
    ));
    start_the_fake_compute(d);
}

/// `nova-manage cell_v2 <command>` in a one-shot container of the conductor's image with the
/// cell's bootstrap volumes, as get_cell_settings.yml and create_cells.yml run it; its output.
fn nova_manage_cell_v2(d: &Deployment, name: &'static str, command: &str) -> String {
    d.node.one_shot(Run {
        name,
        image: image_of(d.service("nova_cell", "nova-conductor")),
        volumes: strings(&d.config.rendered.doc["cell"]["bootstrap_volumes"]),
        bootstrap_label: true,
        command: vec![
            "bash".into(),
            "-c".into(),
            format!("sudo -E kolla_set_configs && nova-manage cell_v2 {command}"),
        ],
        ..Run::default()
    })
}

/// The uuid of the cell that is not cell0 in `nova-manage cell_v2 list_cells` (what
/// kolla-ansible's `extract_cell` filter reads for the unnamed default cell).
fn cell_uuid(list_cells: &str) -> Option<String> {
    list_cells.lines().find_map(|line| {
        let columns: Vec<&str> = line.split('|').map(str::trim).collect();
        // | Name | UUID | Transport URL | Database Connection | Disabled |
        let (name, uuid) = (columns.get(1)?, columns.get(2)?);
        (uuid.len() == 36 && *name != "cell0" && *name != "Name" && !uuid.starts_with("00000000"))
            .then(|| uuid.to_string())
    })
}

/// nova_compute_fake_1, as the handler "Restart nova-compute-fake containers" starts it. Its
/// config.json (nova-compute.json.j2) lists compute_id, hostnqn, auth.conf and the CA directory,
/// which kolla-ansible 20.6.0's config-nova-fake.yml does not write (config.yml writes them for
/// a real nova-compute only): the test writes them as config.yml would.
fn start_the_fake_compute(d: &Deployment) {
    let dir = d.config.rendered.dir.join("config/nova-compute-fake-1");
    let compute_id = std::fs::read_to_string("/proc/sys/kernel/random/uuid").expect("a uuid");
    let compute_id = compute_id.trim();
    std::fs::write(dir.join("compute_id"), compute_id).unwrap();
    std::fs::write(
        dir.join("hostnqn"),
        format!("nqn.2014-08.org.nvmexpress:uuid:{compute_id}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("auth.conf"), "").unwrap();
    let cas = d
        .config
        .rendered
        .dir
        .join("config/nova-conductor/ca-certificates");
    if cas.is_dir() {
        let status = Command::new("cp")
            .arg("-a")
            .arg(&cas)
            .arg(&dir)
            .status()
            .expect("cp");
        assert!(status.success(), "copy {}", cas.display());
    }
    let fake = &d.config.rendered.doc["cell"]["compute_fake"];
    d.node.start(Run {
        name: "nova_compute_fake_1",
        image: image_of(fake),
        volumes: strings(&fake["volumes"]),
        privileged: is_privileged(fake),
        ..Run::default()
    });
}

fn wait_until_the_services_are_healthy(d: &Deployment) {
    let cell: &[&str] = if d.config.scope.cloud {
        &["nova_scheduler", "nova_conductor"]
    } else {
        &[]
    };
    for container in [
        "memcached",
        "rabbitmq",
        "glance_api",
        "placement_api",
        "nova_api",
    ]
    .iter()
    .chain(cell)
    {
        d.node.wait_healthy(container);
    }
}

/// The other healthcheck scripts kolla-ansible uses (nova-scheduler's and nova-conductor's
/// healthcheck_port, the socket check), run as the image's user: mariadbd has the services'
/// pooled connections and listens on its socket. And one that must fail: nothing listens on
/// port 1.
fn check_the_other_healthcheck_scripts(d: &Deployment) {
    d.node
        .exec_ok("mariadb", &["healthcheck_port", "mariadbd", "3306"]);
    d.node.exec_ok(
        "mariadb",
        &["healthcheck_socket", "mariadbd", "/run/mysqld/mysqld.sock"],
    );
    assert!(
        !d.node
            .exec("memcached", &["healthcheck_listen", "memcached", "1"])
            .status
            .success(),
        "healthcheck_listen fails for a port nobody listens on"
    );
}

/// `GET /v2/images`, with the token and without.
fn check_glance_api(d: &Deployment, token: &str) {
    let with_token = format!("X-Auth-Token: {token}");
    let glance_url = format!("{}/v2/images", d.url("glance_internal"));
    let (status, headers, body) = http(&d.node, "glance_api", &["-H", &with_token, &glance_url]);
    assert_eq!(status, 200, "GET /v2/images:\n{headers}\n{body}");
    assert!(body.contains("\"images\""), "{body}");
    let (status, _, body) = http(&d.node, "glance_api", &[&glance_url]);
    assert_eq!(status, 401, "GET /v2/images without a token:\n{body}");
}

/// placement's root, and `GET /resource_providers` with the token.
fn check_placement_api(d: &Deployment, token: &str) {
    let with_token = format!("X-Auth-Token: {token}");
    let placement_url = d.url("placement_internal");
    let (status, headers, body) = http(&d.node, "placement_api", &[&placement_url]);
    assert_eq!(status, 200, "GET / (placement):\n{headers}\n{body}");
    assert!(body.contains("\"versions\""), "{body}");
    let (status, headers, body) = http(
        &d.node,
        "placement_api",
        &[
            "-H",
            &with_token,
            "-H",
            "OpenStack-API-Version: placement 1.6",
            &format!("{placement_url}/resource_providers"),
        ],
    );
    assert_eq!(status, 200, "GET /resource_providers:\n{headers}\n{body}");
}

/// `GET /v2.1/flavors`, with the token and without.
fn check_nova_api(d: &Deployment, token: &str) {
    let with_token = format!("X-Auth-Token: {token}");
    let flavors = format!("{}/v2.1/flavors", d.url("nova_internal"));
    let (status, headers, body) = http(&d.node, "nova_api", &["-H", &with_token, &flavors]);
    assert_eq!(status, 200, "GET /v2.1/flavors:\n{headers}\n{body}");
    assert!(body.contains("\"flavors\""), "{body}");
    let (status, _, body) = http(&d.node, "nova_api", &[&flavors]);
    assert_eq!(status, 401, "GET /v2.1/flavors without a token:\n{body}");
}

/// The fake compute came up and reported its hypervisor: placement holds a resource provider
/// named after its host (`<hostname>_1`, nova.conf's `host` for enable_nova_fake) with VCPU and
/// MEMORY_MB inventory. (The cell's host discovery and a server boot need the cells created
/// before nova-api starts, as kolla-ansible's nova.yml orders it: not done yet.)
fn check_the_fake_compute_in_placement(d: &Deployment, token: &str) {
    let host = fake_compute_host(d);
    let url = format!(
        "{}/resource_providers?name={host}",
        d.url("placement_internal")
    );
    wait_for(&format!("{host} in placement"), HEALTH_LIMIT, || {
        let (status, headers, body) = http(
            &d.node,
            "keystone",
            &[
                "-H",
                &format!("X-Auth-Token: {token}"),
                "-H",
                "OpenStack-API-Version: placement 1.14",
                &url,
            ],
        );
        let found: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        match found["resource_providers"][0]["uuid"].as_str() {
            Some(uuid) if status == 200 => {
                let inventories = format!(
                    "{}/resource_providers/{uuid}/inventories",
                    d.url("placement_internal")
                );
                // The compute creates its provider first and writes the inventory after.
                let inv = keystone_api(&d.node, token, "GET", &inventories, None);
                if inv["inventories"]["VCPU"]["total"].as_u64() > Some(0)
                    && inv["inventories"]["MEMORY_MB"]["total"].as_u64() > Some(0)
                {
                    Ok(())
                } else {
                    Err(format!("{host}'s inventory: {inv}\n{}", nova_logs(d)))
                }
            }
            _ => Err(format!("{status}\n{headers}\n{body}\n{}", nova_logs(d))),
        }
    });
}

/// The fake compute's nova service host: config-nova-fake.yml's `<hostname>_<n>`.
fn fake_compute_host(d: &Deployment) -> String {
    format!("{}_1", d.config.rendered.str("hostname"))
}

/// nova-cell's deploy.yml once its handlers have run: wait_discover_computes.yml (kolla_toolbox's
/// `openstack compute service list`, until the compute has registered its service) and
/// discover_computes.yml (get_cell_settings.yml's `list_cells`, then `nova-manage cell_v2
/// discover_hosts --by-service` in nova_conductor), which maps the compute host into the cell.
fn discover_the_compute(d: &Deployment) {
    let host = fake_compute_host(d);
    wait_for(
        &format!("{host} registered as a nova-compute service"),
        HEALTH_LIMIT,
        || {
            let out = toolbox_openstack(
                d,
                &[
                    "compute",
                    "service",
                    "list",
                    "--format",
                    "json",
                    "--column",
                    "Host",
                    "--service",
                    "nova-compute",
                ],
            );
            let hosts: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            if hosts
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| h["Host"] == host)
            {
                Ok(())
            } else {
                Err(format!("{}\n{}", text(&out), nova_logs(d)))
            }
        },
    );
    let cells = nova_manage_cell_v2(d, "nova_list_cells", "list_cells --verbose");
    let uuid = cell_uuid(&cells).unwrap_or_else(|| panic!("no cell to discover into:\n{cells}"));
    let discovered = d.node.exec_ok(
        "nova_conductor",
        &[
            "nova-manage",
            "cell_v2",
            "discover_hosts",
            "--by-service",
            "--cell_uuid",
            &uuid,
            "--verbose",
        ],
    );
    // nova-api and the conductor find the compute through its host mapping.
    let hosts = d
        .node
        .exec_ok("nova_conductor", &["nova-manage", "cell_v2", "list_hosts"]);
    assert!(
        hosts
            .lines()
            .any(|line| line.contains(&uuid) && line.contains(&format!(" {host} "))),
        "discover_hosts did not map {host} into cell {uuid}:\n{discovered}\n{hosts}"
    );
}

/// nova.yml's "Refresh nova scheduler cell cache" (roles/nova: refresh_scheduler_cell_cache.yml):
/// SIGHUP to the scheduler container's first process, which dumb-init passes on.
fn refresh_the_scheduler_s_cell_cache(d: &Deployment) {
    let pid = docker_ok(&[
        "inspect",
        "-f",
        "{{.State.Pid}}",
        &d.node.name("nova_scheduler"),
    ]);
    let status = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -HUP {}", pid.trim());
}

/// `openstack` in kolla_toolbox with kolla-ansible's `openstack_auth` on the command line, as
/// wait_discover_computes.yml runs it.
fn toolbox_openstack(d: &Deployment, args: &[&str]) -> Output {
    let doc = &d.config.rendered.doc;
    let auth = &doc["openstack_auth"];
    let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut cmd: Vec<String> = vec![
        "openstack".into(),
        "--os-interface".into(),
        field(&doc["openstack_interface"]),
        "--os-auth-url".into(),
        field(&auth["auth_url"]),
        "--os-project-domain-name".into(),
        field(&auth["domain_name"]),
        "--os-project-name".into(),
        field(&auth["project_name"]),
        "--os-username".into(),
        field(&auth["username"]),
        "--os-password".into(),
        field(&auth["password"]),
        "--os-identity-api-version".into(),
        "3".into(),
        "--os-user-domain-name".into(),
        field(&auth["user_domain_name"]),
        "--os-region-name".into(),
        field(&doc["openstack_region_name"]),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    d.node.exec("kolla_toolbox", &cmd)
}

/// `openstack ... --format json` in kolla_toolbox that must succeed; its parsed output.
#[track_caller]
fn toolbox_openstack_json(d: &Deployment, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let out = toolbox_openstack(d, &args);
    assert!(
        out.status.success(),
        "openstack {}: {}\n{}",
        args.join(" "),
        text(&out),
        nova_logs(d)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "openstack {}: no JSON ({e}): {}",
            args.join(" "),
            text(&out)
        )
    })
}

/// `openstack compute service list`: nova-conductor, nova-scheduler and the fake nova-compute
/// enabled and up (their reports reach the database through rabbitmq and the conductor).
fn check_nova_s_services_are_up(d: &Deployment) {
    wait_for(
        "nova's conductor, scheduler and compute up",
        HEALTH_LIMIT,
        || {
            let services = toolbox_openstack_json(d, &["compute", "service", "list"]);
            let up = |binary: &str| {
                services.as_array().into_iter().flatten().any(|s| {
                    s["Binary"] == binary && s["Status"] == "enabled" && s["State"] == "up"
                })
            };
            let missing: Vec<&str> = ["nova-conductor", "nova-scheduler", "nova-compute"]
                .into_iter()
                .filter(|b| !up(b))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "not up: {missing:?} in {services:#}\n{}",
                    nova_logs(d)
                ))
            }
        },
    );
}

/// Role neutron's deploy.yml for neutron-server (ML2 with kolla-ansible's defaults, no agents):
/// register.yml (service-ks-register) and bootstrap.yml's database through kolla_toolbox, then
/// bootstrap_service.yml's bootstrap_neutron one-shot (KOLLA_BOOTSTRAP: the schema) and the
/// server's container, healthy by kolla-ansible's healthcheck.
fn start_neutron_server(d: &Deployment) {
    kolla_toolbox_steps(d, &["neutron:register.yml", "neutron:bootstrap.yml"]);
    let server = d.service("neutron", "neutron-server");
    d.node.one_shot(Run {
        name: "bootstrap_neutron",
        image: image_of(server),
        env: vec![
            ("KOLLA_BOOTSTRAP".into(), String::new()),
            (
                "NEUTRON_BOOTSTRAP_SERVICES".into(),
                d.config.rendered.str("neutron_bootstrap_services"),
            ),
        ],
        volumes: strings(&server["volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
    d.node.start(service_run("neutron_server", server));
    d.node
        .wait_healthy_showing("neutron_server", &[NEUTRON_SERVER_LOG]);
}

/// Issue 26's server: an image uploaded to glance (a file made in kolla_toolbox), a flavor,
/// `openstack server create --nic none` through nova-api, scheduled by nova-scheduler (placement's
/// allocation candidates), built by the conductor and the fake compute over rabbitmq, ACTIVE on
/// the fake compute's host; placement holds the flavor's allocation for it; nova-api's server
/// view (which asks neutron for the server's security groups) answers.
fn boot_a_server(d: &Deployment, token: &str) {
    d.node.exec_ok(
        "kolla_toolbox",
        &["bash", "-c", "head -c 1M /dev/zero > /tmp/kb-image.raw"],
    );
    let image = toolbox_openstack_json(
        d,
        &[
            "image",
            "create",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--file",
            "/tmp/kb-image.raw",
            "kb-image",
        ],
    );
    assert_eq!(image["status"], "active", "the uploaded image: {image:#}");
    assert_eq!(image["size"], 1 << 20, "the uploaded image: {image:#}");
    toolbox_openstack_json(
        d,
        &[
            "flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "kb-tiny",
        ],
    );
    // `--nic none` needs compute API 2.37.
    const COMPUTE_API: [&str; 2] = ["--os-compute-api-version", "2.37"];
    let created = toolbox_openstack_json(
        d,
        &[
            &COMPUTE_API[..],
            &[
                "server",
                "create",
                "--flavor",
                "kb-tiny",
                "--image",
                "kb-image",
                "--nic",
                "none",
                "kb-server",
            ],
        ]
        .concat(),
    );
    let id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("server create: no id in {created:#}"))
        .to_string();
    let mut server = Value::Null;
    wait_for("kb-server ACTIVE", BOOT_LIMIT, || {
        server = toolbox_openstack_json(d, &[&COMPUTE_API[..], &["server", "show", &id]].concat());
        match server["status"].as_str() {
            Some("ACTIVE") => Ok(()),
            Some("ERROR") => panic!(
                "kb-server went to ERROR: {:#}\n{}\n{}",
                server["fault"],
                nova_logs(d),
                neutron_logs(d)
            ),
            _ => Err(format!("{server:#}\n{}", nova_logs(d))),
        }
    });
    assert_eq!(
        server["OS-EXT-SRV-ATTR:host"],
        fake_compute_host(d).as_str(),
        "kb-server's host: {server:#}"
    );
    let allocations = keystone_api(
        &d.node,
        token,
        "GET",
        &format!("{}/allocations/{id}", d.url("placement_internal")),
        None,
    );
    let resources: Vec<&Value> = allocations["allocations"]
        .as_object()
        .into_iter()
        .flat_map(|a| a.values())
        .map(|provider| &provider["resources"])
        .collect();
    assert_eq!(
        resources,
        [&json!({"VCPU": 1, "MEMORY_MB": 128, "DISK_GB": 1})],
        "kb-server's allocations in placement: {allocations:#}"
    );
}

/// `openstack network create` and `subnet create` through neutron-server (a VXLAN tenant
/// network by kolla-ansible's ml2_conf.ini; the subnet is a documentation range: nothing is
/// wired, no agent runs).
fn create_a_network_and_a_subnet(d: &Deployment) {
    let network = toolbox_openstack_json(d, &["network", "create", "kb-net"]);
    assert_eq!(network["status"], "ACTIVE", "kb-net: {network:#}");
    assert_eq!(
        network["provider:network_type"], "vxlan",
        "kb-net: {network:#}"
    );
    let subnet = toolbox_openstack_json(
        d,
        &[
            "subnet",
            "create",
            "--network",
            "kb-net",
            "--subnet-range",
            "192.0.2.0/24",
            "kb-subnet",
        ],
    );
    assert_eq!(subnet["cidr"], "192.0.2.0/24", "kb-subnet: {subnet:#}");
    assert_eq!(subnet["network_id"], network["id"], "kb-subnet: {subnet:#}");
}

/// Role heat's deploy.yml: register.yml (heat and heat-cfn in the catalog, the heat user, the
/// stack owner and stack user roles, the admin a stack owner) and bootstrap.yml's database
/// through kolla_toolbox, bootstrap_service.yml's bootstrap_heat one-shot (the schema, and heat's
/// stack domain and its admin, made by the image with the admin's `OS_*` credentials kolla-ansible
/// passes), then heat-api, heat-api-cfn and heat-engine, healthy by kolla-ansible's healthchecks.
/// The domain's admin can then log into it with HEAT_DOMAIN_ADMIN_PASSWORD.
fn start_heat(d: &Deployment) {
    kolla_toolbox_steps(d, &["heat:register.yml", "heat:bootstrap.yml"]);
    bootstrap_heat(d);
    for (container, service) in [
        ("heat_api", "heat-api"),
        ("heat_api_cfn", "heat-api-cfn"),
        ("heat_engine", "heat-engine"),
    ] {
        d.node
            .start(service_run(container, d.service("heat", service)));
    }
    for container in ["heat_api", "heat_api_cfn", "heat_engine"] {
        d.node.wait_healthy_showing(container, &HEAT_LOGS);
    }
    let domain_admin_password = d.config.rendered.str("heat_domain_admin_password");
    // heat-engine logs in as the domain's admin, scoped to the domain, to make stack users.
    let auth_body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "heat_domain_admin", "domain": {"name": "heat_user_domain"},
            "password": domain_admin_password}}},
        "scope": {"domain": {"name": "heat_user_domain"}}}})
    .to_string();
    let (status, headers, body) = post_to_the_tokens_url(d, &auth_body);
    assert_eq!(
        status, 201,
        "heat_domain_admin's token for heat_user_domain:\n{headers}\n{body}"
    );
}

/// bootstrap_service.yml's bootstrap_heat one-shot (deploy and upgrade alike): KOLLA_BOOTSTRAP
/// with the admin's `OS_*` credentials and HEAT_DOMAIN_ADMIN_PASSWORD.
fn bootstrap_heat(d: &Deployment) {
    let api = d.service("heat", "heat-api");
    let doc = &d.config.rendered.doc;
    let auth = &doc["openstack_auth"];
    let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
    d.node.one_shot(Run {
        name: "bootstrap_heat",
        image: image_of(api),
        env: [
            ("KOLLA_BOOTSTRAP", String::new()),
            ("OS_AUTH_URL", field(&auth["auth_url"])),
            ("OS_IDENTITY_API_VERSION", "3".into()),
            ("OS_INTERFACE", "internal".into()),
            ("OS_USERNAME", field(&auth["username"])),
            ("OS_PASSWORD", field(&auth["password"])),
            ("OS_PROJECT_NAME", field(&auth["project_name"])),
            ("OS_USER_DOMAIN_NAME", field(&auth["user_domain_name"])),
            ("OS_REGION_NAME", field(&doc["openstack_region_name"])),
            (
                "HEAT_DOMAIN_ADMIN_PASSWORD",
                d.config.rendered.str("heat_domain_admin_password"),
            ),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .to_vec(),
        volumes: strings(&api["volumes"]),
        bootstrap_label: true,
        ..Run::default()
    });
}

/// Role horizon's deploy.yml with kolla-ansible's defaults (sessions in memcached, so no
/// database and no bootstrap): the horizon container with its ENABLE_* and FORCE_GENERATE,
/// healthy once Apache serves the dashboard (the image collects and compresses the static files
/// first).
fn start_horizon(d: &Deployment) {
    d.node
        .start(service_run("horizon", d.service("horizon", "horizon")));
    d.node
        .wait_healthy_showing("horizon", &["/var/log/kolla/horizon/horizon-error.log"]);
}

/// issue 26's browser: headless Chromium (Debian's, driven by selenium from PyPI:
/// scripts/setup-browser.sh) inside the node's network namespace opens horizon's login page,
/// logs in as kolla-ansible's admin and must reach the project overview, which counts the
/// server booted above; screenshots of both pages are kept in target/test-artifacts (not
/// committed).
fn log_into_horizon_in_a_browser(d: &Deployment) {
    let python = Path::new(REPO).join("target/browser-venv/bin/python");
    assert!(
        python.exists(),
        "no selenium venv at {}: run scripts/setup-browser.sh (scripts/test.sh does)",
        python.display()
    );
    let artifacts = Path::new(REPO).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshots = artifacts.join(format!("horizon-{}", d.config.label));
    let pid = docker_ok(&["inspect", "-f", "{{.State.Pid}}", &d.node.holder]);
    let auth = &d.config.rendered.doc["openstack_auth"];
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
        .arg(&python)
        .arg(Path::new(REPO).join("tests/kolla-ansible/horizon_login.py"))
        .arg(format!("{}/", d.url("horizon_internal")))
        .arg(auth["username"].as_str().unwrap_or_default())
        .arg(auth["password"].as_str().unwrap_or_default())
        .arg(&screenshots)
        .output()
        .expect("run tests/kolla-ansible/horizon_login.py");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "horizon_login.py: no JSON ({e}):\n{}\n{}",
            text(&out),
            d.node.kolla_log("/var/log/kolla/horizon/horizon-error.log")
        )
    });
    let login_title = report["login"]["title"].as_str().unwrap_or_default();
    assert!(
        login_title.contains("Login"),
        "horizon's login page: {report:#}"
    );
    let after = &report["after_login"];
    let url = after["url"].as_str().unwrap_or_default();
    let title = after["title"].as_str().unwrap_or_default();
    assert!(
        url.ends_with("/project/") && title.contains("Overview"),
        "logging into horizon as {} must reach the project overview: {report:#}\n{}",
        auth["username"],
        d.node.kolla_log("/var/log/kolla/horizon/horizon-error.log")
    );
    // The overview counts what this deployment made: the server booted above, its flavor's RAM.
    let page = after["text"].as_str().unwrap_or_default();
    for seen in ["Instances\nUsed 1 of", "RAM\nUsed 128MB of"] {
        assert!(
            page.contains(seen),
            "horizon's overview shows {seen:?}: {page}"
        );
    }
    eprintln!(
        "horizon {}: logged in, \"{title}\" at {url}; screenshots {}-login.png, -overview.png",
        d.config.label,
        screenshots.display()
    );
}

/// A heat stack of one `OS::Heat::RandomString`, through heat-api's REST API (kolla_toolbox has
/// no heat client, as kolla's has none): heat-engine creates it over rabbitmq
/// (CREATE_COMPLETE) and its output is the string, of the length asked for.
fn create_a_stack(d: &Deployment) {
    let token = toolbox_openstack_json(d, &["token", "issue"]);
    let (id, project) = (
        token["id"].as_str().unwrap_or_default(),
        token["project_id"].as_str().unwrap_or_default(),
    );
    let stacks = format!("{}/v1/{project}/stacks", d.url("heat_internal"));
    let template = json!({
        "heat_template_version": "2018-08-31",
        "resources": {"random": {"type": "OS::Heat::RandomString", "properties": {"length": 12}}},
        "outputs": {"value": {"value": {"get_attr": ["random", "value"]}}},
    });
    let created = keystone_api(
        &d.node,
        id,
        "POST",
        &stacks,
        Some(json!({"stack_name": "kb-stack", "template": template})),
    );
    let stack_id = created["stack"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("stack create: no id in {created:#}"))
        .to_string();
    let mut stack = Value::Null;
    wait_for("kb-stack CREATE_COMPLETE", BOOT_LIMIT, || {
        stack = keystone_api(
            &d.node,
            id,
            "GET",
            &format!("{stacks}/kb-stack/{stack_id}"),
            None,
        )["stack"]
            .clone();
        match stack["stack_status"].as_str() {
            Some("CREATE_COMPLETE") => Ok(()),
            Some("CREATE_FAILED") => panic!(
                "kb-stack failed: {}\n{}",
                stack["stack_status_reason"],
                heat_logs(d)
            ),
            _ => Err(format!("{stack:#}\n{}", heat_logs(d))),
        }
    });
    let value = stack["outputs"][0]["output_value"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(value.chars().count(), 12, "kb-stack's output: {stack:#}");
}

/// The last lines of heat-engine's and heat-api's logs (kolla_logs), for a failure.
fn heat_logs(d: &Deployment) -> String {
    HEAT_LOGS
        .iter()
        .map(|file| d.node.kolla_log(file))
        .collect()
}

/// The last lines of neutron-server's log (kolla_logs), for a failure.
fn neutron_logs(d: &Deployment) -> String {
    d.node.kolla_log(NEUTRON_SERVER_LOG)
}

/// The last lines of nova's scheduler, conductor and compute logs (kolla_logs), for a failure.
fn nova_logs(d: &Deployment) -> String {
    let mut logs = String::new();
    for (container, file) in [
        ("nova_scheduler", "nova-scheduler.log"),
        ("nova_conductor", "nova-conductor.log"),
        ("nova_compute_fake_1", "nova-compute.log"),
    ] {
        let out = d.node.exec(
            container,
            &["tail", "-n", "30", &format!("/var/log/kolla/nova/{file}")],
        );
        logs.push_str(&format!("--- {container}: {file}\n{}", text(&out)));
    }
    logs
}

/// The key rotation keystone-fernet's cron runs: a new primary key, pushed (a no-op on one
/// node); the keys stay keystone's and tokens keep validating.
fn rotate_the_fernet_keys(d: &Deployment, token: &str) {
    d.node
        .exec_ok("keystone_fernet", &["/usr/bin/fernet-rotate.sh"]);
    let keys = d
        .node
        .exec_ok("keystone_fernet", &["ls", "/etc/keystone/fernet-keys"]);
    assert_eq!(
        keys.split_whitespace().count(),
        3,
        "keys after a rotation: {keys}"
    );
    d.node
        .exec_ok("keystone_fernet", &["/usr/bin/fernet-healthcheck.sh"]);
    let with_token = format!("X-Auth-Token: {token}");
    let with_subject = format!("X-Subject-Token: {token}");
    let (status, headers, body) = http(
        &d.node,
        "keystone",
        &["-H", &with_token, "-H", &with_subject, &d.tokens_url()],
    );
    assert_eq!(
        status, 200,
        "validating the token after a rotation:\n{headers}\n{body}"
    );
}

/// An upgrade to the same images, as kolla-ansible's upgrade tasks run it: every one-shot
/// step must find nothing to do and exit 0.
fn upgrade_to_the_same_images(d: &Deployment) {
    let upgrade = |name: &'static str, service: &Value, env: &[(&str, &str)]| {
        d.node.one_shot(Run {
            name,
            image: image_of(service),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            volumes: strings(&service["volumes"]),
            bootstrap_label: true,
            ..Run::default()
        });
    };
    let address = d.config.rendered.str("api_interface_address");
    upgrade(
        "upgrade_mariadb",
        d.service("mariadb", "mariadb"),
        &[
            ("KOLLA_UPGRADE", ""),
            ("DB_HOST", &address),
            ("DB_PORT", "3306"),
            ("DB_ROOT_PASSWORD", &d.root_password),
        ],
    );
    let keystone = d.service("keystone", "keystone");
    upgrade("init_upgrade_database", keystone, &[("KOLLA_UPGRADE", "")]);
    upgrade(
        "finish_upgrade_database",
        keystone,
        &[("KOLLA_FINISH_UPGRADE", "")],
    );
    for step in [
        "GLANCE_DB_EXPAND",
        "GLANCE_DB_MIGRATE",
        "GLANCE_DB_CONTRACT",
    ] {
        upgrade(
            "bootstrap_glance",
            d.service("glance", "glance-api"),
            &[("KOLLA_UPGRADE", ""), (step, "")],
        );
    }
    let placement = d.service("placement", "placement-api");
    upgrade("bootstrap_placement", placement, &[("KOLLA_UPGRADE", "")]);
    upgrade("bootstrap_placement", placement, &[("KOLLA_OSM", "")]);
    if d.config.scope.cloud {
        // rolling_upgrade.yml's two phases; heat's upgrade.yml runs its bootstrap again (the
        // stack domain and its admin are found, not made twice).
        let neutron = d.service("neutron", "neutron-server");
        for phase in ["NEUTRON_DB_EXPAND", "NEUTRON_DB_CONTRACT"] {
            upgrade(
                "bootstrap_neutron",
                neutron,
                &[
                    ("KOLLA_UPGRADE", ""),
                    (phase, ""),
                    ("NEUTRON_ROLLING_UPGRADE_SERVICES", ""),
                ],
            );
        }
        bootstrap_heat(d);
    }
    // rabbitmq's upgrade reads the running version.
    let version = d.node.exec_ok("rabbitmq", &["rabbitmqctl", "--version"]);
    assert!(
        version.trim().starts_with(|c: char| c.is_ascii_digit()),
        "rabbitmqctl --version: {version}"
    );
}

/// The services log into the kolla_logs volume, with the owners kolla-ansible's config.json
/// `permissions` give (kolla_set_configs, recursively where it says so).
fn check_the_log_files_and_their_owners(d: &Deployment) {
    for (container, path, owner) in [
        (
            "mariadb",
            "/var/log/kolla/mariadb/mariadb.log",
            "mysql:mysql",
        ),
        (
            "keystone",
            "/var/log/kolla/keystone/keystone.log",
            "keystone:keystone",
        ),
        (
            "glance_api",
            "/var/log/kolla/glance/glance-api.log",
            "glance:glance",
        ),
        (
            "placement_api",
            "/var/log/kolla/placement/placement-api-uwsgi.log",
            "placement:kolla",
        ),
        (
            "nova_api",
            "/var/log/kolla/nova/nova-api-uwsgi.log",
            "nova:nova",
        ),
    ] {
        let out = d.node.exec_ok(container, &["stat", "-c", "%U:%G %s", path]);
        let (who, size) = out.trim().split_once(' ').unwrap_or_default();
        assert_eq!(who, owner, "{container}: owner of {path}");
        assert_ne!(size, "0", "{container}: {path} is written to");
    }
}

/// kolla_copy_ca_into_containers: the CA kolla-ansible copied to
/// /var/lib/kolla/share/ca-certificates is in the trust store of the services given it.
fn check_the_custom_ca_is_trusted(d: &Deployment) {
    for container in [
        "rabbitmq",
        "keystone",
        "glance_api",
        "placement_api",
        "nova_api",
    ] {
        d.node.exec_ok(
            container,
            &[
                "bash",
                "-c",
                "cert=/var/lib/kolla/share/ca-certificates/kolla-build-test-ca.crt \
                 && test -f /usr/local/share/ca-certificates/kolla-customca-kolla-build-test-ca.crt \
                 && grep -qF \"$(sed -n 2p $cert)\" /etc/ssl/certs/ca-certificates.crt",
            ],
        );
    }
}

/// Containers run as the images' users (no --user).
/// kolla-ansible starts nova-api `privileged`: here with every capability but CAP_SYS_RESOURCE
/// (the sandbox's limit), read from the kernel's bounding set inside the container; a service
/// kolla-ansible does not make privileged keeps Docker's default set (no CAP_SYS_ADMIN).
fn check_privileged_containers_get_what_the_sandbox_allows(d: &Deployment) {
    const SYS_ADMIN: u32 = 21;
    const SYS_RESOURCE: u32 = 24;
    let bounding = |container: &str| -> u64 {
        let status = d
            .node
            .exec_ok(container, &["grep", "^CapBnd:", "/proc/self/status"]);
        let hex = status.split_whitespace().nth(1).unwrap_or_default();
        u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{container}: {status}: {e}"))
    };
    assert!(is_privileged(d.service("nova", "nova-api")));
    let nova = bounding("nova_api");
    assert!(nova & (1 << SYS_ADMIN) != 0, "nova_api: CapBnd {nova:x}");
    assert!(nova & (1 << SYS_RESOURCE) == 0, "nova_api: CapBnd {nova:x}");
    assert!(!is_privileged(d.service("keystone", "keystone")));
    let keystone = bounding("keystone");
    assert!(
        keystone & (1 << SYS_ADMIN) == 0,
        "keystone: CapBnd {keystone:x}"
    );
}

fn check_the_containers_run_as_the_images_users(d: &Deployment) {
    let cell: &[(&str, &str)] = if d.config.scope.cloud {
        &[
            ("nova_scheduler", "nova"),
            ("nova_conductor", "nova"),
            ("nova_compute_fake_1", "nova"),
            ("neutron_server", "neutron"),
            ("heat_engine", "heat"),
            ("kolla_toolbox", "ansible"),
        ]
    } else {
        &[("kolla_toolbox", "ansible")]
    };
    for (container, user) in [
        ("mariadb", "mysql"),
        ("memcached", "memcached"),
        ("rabbitmq", "rabbitmq"),
        ("glance_api", "glance"),
    ]
    .iter()
    .chain(cell)
    {
        let who = d.node.exec_ok(container, &["id", "-un"]);
        assert_eq!(who.trim(), *user, "{container} runs as {user}");
    }
}

// ---------------------------------------------------------------------------------------------
// The harness the steps share.

/// What the deployment starts from: kolla-ansible's rendered configuration and the work
/// directory of this run (its files go when it is dropped).
struct Config {
    /// Names the run in container names and messages: the install type, or the tree.
    label: String,
    work: tempfile::TempDir,
    rendered: Rendered,
    scope: Scope,
}

/// What a deployment covers beyond the steps every tree's images go through.
#[derive(Clone, Copy)]
struct Scope {
    /// The cloud past nova-api: nova's cell (scheduler, conductor, the fake compute),
    /// neutron-server, a server booted, a network made: our tree's images; kolla's tree's
    /// selection stops at nova-api.
    cloud: bool,
    /// Each kolla_toolbox step a second time, which must change nothing. The kolla-toolbox image
    /// (one template, whatever the install type) and kolla-ansible's modules are the same in
    /// every deployment of a test run, so one of them checks it: our tree's binary one.
    toolbox_reruns: bool,
}

/// A node being deployed. The node comes first: its containers and volumes go before the
/// configuration's directory and images.
struct Deployment {
    node: Node,
    root_password: String,
    config: Config,
}

impl Deployment {
    /// A service's container definition (see `Rendered::service`).
    fn service(&self, role: &str, service: &str) -> &Value {
        self.config.rendered.service(role, service)
    }

    /// One of the rendered `urls` (`keystone_internal`, `glance_internal`...).
    fn url(&self, name: &str) -> String {
        self.config.rendered.doc["urls"][name]
            .as_str()
            .unwrap_or_else(|| panic!("services.json: no url {name}"))
            .to_string()
    }

    fn tokens_url(&self) -> String {
        format!("{}/v3/auth/tokens", self.url("keystone_internal"))
    }
}

fn image_of(service: &Value) -> String {
    service["image"].as_str().expect("image").to_string()
}

/// kolla-ansible's wait_for on mariadb: port 3306 answers with a banner that says MariaDB,
/// then the node reports WSREP synced.
fn wait_for_mariadb(d: &Deployment, what: &str) {
    let node = &d.node;
    wait_for(
        &format!("{what}: MariaDB port liveness"),
        HEALTH_LIMIT,
        || {
            let out = node.exec(
                "mariadb",
                &[
                    "bash",
                    "-c",
                    "exec 3<>/dev/tcp/127.0.0.1/3306 && timeout 5 dd bs=1 count=40 <&3 2>/dev/null",
                ],
            );
            let banner = String::from_utf8_lossy(&out.stdout).into_owned();
            if banner.contains("MariaDB") {
                Ok(())
            } else {
                Err(format!(
                    "{}\nlogs:\n{}",
                    text(&out),
                    node.logs(&node.name("mariadb"))
                ))
            }
        },
    );
    wait_for(&format!("{what}: WSREP synced"), HEALTH_LIMIT, || {
        let out = node.exec(
            "mariadb",
            &[
                "mariadb",
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                &format!("-p{}", d.root_password),
                "-sN",
                "-e",
                "SHOW STATUS LIKE 'wsrep_local_state_comment'",
            ],
        );
        let out = text(&out);
        if out.contains("Synced") {
            Ok(())
        } else {
            Err(out)
        }
    });
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        text(&out)
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
                panic!("{what}: not done after {limit:?}; last result:\n{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

/// How the deployed images are named: kolla-ansible's `docker_namespace`,
/// `docker_image_name_prefix` and `openstack_tag` (no registry: the images are local).
struct ImageNaming {
    namespace: String,
    prefix: String,
    tag: String,
}

impl ImageNaming {
    fn reference(&self, image: &str) -> String {
        format!("{}/{}{image}:{}", self.namespace, self.prefix, self.tag)
    }
}

/// kolla-ansible's rendered node configuration (scripts/kolla-ansible-render.sh).
struct Rendered {
    /// services.json, beside the rendered node_config_directory's per-container directories.
    doc: Value,
    /// The render script's OUT_DIR: scripts/kolla-ansible-toolbox.sh runs against it.
    dir: PathBuf,
}

impl Rendered {
    fn render(dir: &Path, label: &str, naming: &ImageNaming) -> Rendered {
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(Path::new(REPO).join("scripts/kolla-ansible-render.sh"))
            .arg(dir)
            .args([
                "-e",
                &format!("docker_namespace={}", naming.namespace),
                "-e",
                &format!("docker_image_name_prefix={}", naming.prefix),
                "-e",
                &format!("openstack_tag={}", naming.tag),
            ])
            .output()
            .expect("run scripts/kolla-ansible-render.sh");
        assert!(
            out.status.success(),
            "rendering kolla-ansible's configuration failed:\n{}",
            text(&out)
        );
        let config = dir.join("config");
        let doc: Value = serde_json::from_str(
            &std::fs::read_to_string(config.join("services.json")).expect("services.json"),
        )
        .expect("services.json is JSON");
        eprintln!(
            "kolla-ansible {label}: configuration rendered in {:.0?}",
            started.elapsed()
        );
        Rendered {
            doc,
            dir: dir.to_path_buf(),
        }
    }

    /// A service's container definition: `<role>_services[<service>]`.
    fn service(&self, role: &str, service: &str) -> &Value {
        let s = &self.doc["services"][role][service];
        assert!(s.is_object(), "no {role}/{service} in services.json");
        s
    }

    fn str(&self, key: &str) -> String {
        self.doc[key]
            .as_str()
            .unwrap_or_else(|| panic!("services.json: no string {key}"))
            .to_string()
    }
}

/// How one container is started: kolla_container's options.
#[derive(Default)]
struct Run<'a> {
    name: &'a str,
    image: String,
    env: Vec<(String, String)>,
    volumes: Vec<String>,
    healthcheck: Option<String>,
    command: Vec<String>,
    bootstrap_label: bool,
    /// kolla_container's `privileged`: see `PRIVILEGED`.
    privileged: bool,
}

/// What a `privileged` container gets here. This sandbox refuses `--privileged` (runc cannot
/// apply CAP_SYS_RESOURCE); the closest it allows is every other capability with seccomp and
/// AppArmor unconfined. Missing beside CAP_SYS_RESOURCE: the host's devices (`--privileged`
/// also maps every /dev node) and writable /sys and /proc/sys. docs/RUNTIME.md lists it.
const PRIVILEGED: [&str; 8] = [
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
];

/// The containers and volumes of one node, removed when dropped (also on panic).
struct Node {
    prefix: String,
    holder: String,
    containers: RefCell<Vec<String>>,
    volumes: RefCell<Vec<String>>,
}

impl Node {
    /// The node's network namespace: loopback only, with kolla-ansible's host name on it.
    fn new(install_type: &str, hostname: &str, image: &str) -> Node {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!("kbka-{install_type}-{}-{nanos}", std::process::id());
        let holder = format!("{prefix}-node");
        let node = Node {
            prefix,
            holder: holder.clone(),
            containers: RefCell::new(vec![holder.clone()]),
            volumes: RefCell::new(Vec::new()),
        };
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &holder,
            "--label",
            LABEL,
            "--network",
            "none",
            "--hostname",
            hostname,
            "--add-host",
            &format!("{hostname}:127.0.0.1"),
            "--entrypoint",
            "sleep",
            image,
            "infinity",
        ]);
        node
    }

    fn name(&self, container: &str) -> String {
        format!("{}-{container}", self.prefix)
    }

    /// kolla-ansible's volume list as `docker run -v` arguments: empty entries dropped (as
    /// kolla_container does), named volumes given this run's prefix, host paths that do not
    /// exist here left out.
    fn volume_args(&self, volumes: &[String]) -> Vec<String> {
        let mut args = Vec::new();
        for volume in volumes.iter().filter(|v| !v.is_empty()) {
            let (source, rest) = volume.split_once(':').expect("source:dest volume");
            let source = if source.starts_with('/') {
                if !Path::new(source).exists() {
                    continue;
                }
                source.to_string()
            } else {
                let name = format!("{}-{source}", self.prefix);
                if !self.volumes.borrow().contains(&name) {
                    docker_ok(&["volume", "create", "--label", LABEL, &name]);
                    self.volumes.borrow_mut().push(name.clone());
                }
                name
            };
            args.push("-v".to_string());
            args.push(format!("{source}:{rest}"));
        }
        args
    }

    /// `docker run -d` in the node's namespace, as kolla_container's start_container: the common
    /// environment (KOLLA_CONFIG_STRATEGY) plus the task's, KOLLA_SERVICE_NAME from the name.
    fn start(&self, run: Run) -> String {
        let name = self.name(run.name);
        self.containers.borrow_mut().push(name.clone());
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            LABEL,
            "--network",
            &format!("container:{}", self.holder),
            "-e",
            "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS",
            "-e",
            &format!("KOLLA_SERVICE_NAME={}", run.name.replace('_', "-")),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (key, value) in &run.env {
            args.push("-e".into());
            args.push(format!("{key}={value}"));
        }
        if run.bootstrap_label {
            args.extend(["--label".into(), "BOOTSTRAP=".into()]);
        }
        if let Some(test) = &run.healthcheck {
            args.extend(
                [
                    "--health-cmd",
                    test,
                    "--health-interval",
                    "5s",
                    "--health-timeout",
                    "30s",
                    "--health-start-period",
                    "5s",
                    "--health-retries",
                    "3",
                ]
                .map(String::from),
            );
        }
        if run.privileged {
            args.extend(PRIVILEGED.map(String::from));
        }
        args.extend(self.volume_args(&run.volumes));
        args.push(run.image.clone());
        args.extend(run.command.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&args);
        name
    }

    fn logs(&self, name: &str) -> String {
        text(&docker(&["logs", "--tail", "80", name]))
    }

    /// A one-shot container (kolla_container with detach: False): started, waited for (bounded)
    /// and required to exit 0; returns its output.
    fn one_shot(&self, run: Run) -> String {
        let label = run.name.to_string();
        let name = self.start(run);
        let mut code = String::new();
        wait_for(&format!("{label} exits"), BOOT_LIMIT, || {
            let state = docker_ok(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                &name,
            ]);
            match state.trim().split_once(' ') {
                Some(("exited", c)) => {
                    code = c.to_string();
                    Ok(())
                }
                _ => Err(format!("{}\n{}", state.trim(), self.logs(&name))),
            }
        });
        let logs = self.logs(&name);
        assert_eq!(code, "0", "{label} must exit 0:\n{logs}");
        let _ = docker(&["rm", "-f", &name]);
        logs
    }

    fn remove(&self, container: &str) {
        let _ = docker(&["rm", "-f", &self.name(container)]);
    }

    /// `docker exec` (as the image's user, like kolla-ansible).
    fn exec(&self, container: &str, cmd: &[&str]) -> Output {
        let name = self.name(container);
        let mut args = vec!["exec", name.as_str()];
        args.extend(cmd);
        docker(&args)
    }

    #[track_caller]
    fn exec_ok(&self, container: &str, cmd: &[&str]) -> String {
        let out = self.exec(container, cmd);
        assert!(
            out.status.success(),
            "docker exec {container} {}: {}\nlogs:\n{}",
            cmd.join(" "),
            text(&out),
            self.logs(&self.name(container))
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded) for Docker to report the container healthy: kolla-ansible's healthcheck
    /// command, run by the engine as the image's user.
    fn wait_healthy(&self, container: &str) {
        self.wait_healthy_showing(container, &[]);
    }

    /// `wait_healthy`, whose failure also shows the last lines of `log_files` (in kolla_logs,
    /// read through kolla_toolbox, which mounts the volume too: a service that exited cannot
    /// show its own).
    fn wait_healthy_showing(&self, container: &str, log_files: &[&str]) {
        let name = self.name(container);
        let service_logs = || {
            log_files
                .iter()
                .map(|file| self.kolla_log(file))
                .collect::<String>()
        };
        wait_for(&format!("{container} healthy"), HEALTH_LIMIT, || {
            let state = docker_ok(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                &name,
            ]);
            let state = state.trim();
            assert!(
                state.starts_with("running"),
                "{container} is not running ({state}):\n{}{}",
                self.logs(&name),
                service_logs()
            );
            if state == "running healthy" {
                return Ok(());
            }
            let health = docker_ok(&["inspect", "--format", "{{json .State.Health}}", &name]);
            Err(format!(
                "{state}\nhealth: {health}\nlogs:\n{}{}",
                self.logs(&name),
                service_logs()
            ))
        });
    }

    /// The last lines of a log file in kolla_logs (`/var/log/kolla/...`), read in kolla_toolbox.
    fn kolla_log(&self, file: &str) -> String {
        let out = self.exec("kolla_toolbox", &["tail", "-n", "40", file]);
        format!("--- {file}\n{}", text(&out))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for name in self.containers.borrow().iter().rev() {
            let _ = docker(&["rm", "-f", "-v", name]);
        }
        for name in self.volumes.borrow().iter() {
            let _ = docker(&["volume", "rm", "-f", name]);
        }
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn env_of(value: &Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The healthcheck test of a service: `["CMD-SHELL", "<command>"]`.
fn health_cmd(service: &Value) -> String {
    let test = strings(&service["healthcheck"]["test"]);
    assert_eq!(
        test.first().map(String::as_str),
        Some("CMD-SHELL"),
        "{service}"
    );
    test[1].clone()
}

/// The service's own container: image, environment, volumes and healthcheck from kolla-ansible.
fn service_run<'a>(name: &'a str, service: &Value) -> Run<'a> {
    Run {
        name,
        image: service["image"].as_str().expect("image").to_string(),
        env: env_of(&service["environment"]),
        volumes: strings(&service["volumes"]),
        healthcheck: service.get("healthcheck").map(|_| health_cmd(service)),
        privileged: is_privileged(service),
        ..Run::default()
    }
}

/// kolla_container's `privileged`, as services.json has it: a boolean, or the string a
/// templated value renders to (`"True"`, `"False"`).
fn is_privileged(service: &Value) -> bool {
    match &service["privileged"] {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        _ => false,
    }
}

/// An HTTP request with curl from inside a container: (status, headers, body).
fn http(node: &Node, from: &str, args: &[&str]) -> (u32, String, String) {
    let marker = "\n--kolla-build-status--";
    // `-q` (first) leaves out the image's ~/.curlrc: kolla's base has one with `--fail` and five
    // retries, which would turn an expected 401 into an error after a minute.
    let mut cmd = vec![
        "curl",
        "-q",
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--include",
        "--write-out",
        "\n--kolla-build-status--%{http_code}",
    ];
    cmd.extend(args);
    let out = node.exec_ok(from, &cmd);
    let (response, status) = out.rsplit_once(marker).unwrap_or((&out, "0"));
    let (headers, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    (
        status.trim().parse().unwrap_or(0),
        headers.to_string(),
        body.to_string(),
    )
}

/// A Keystone API call with the admin token; returns the JSON body.
fn keystone_api(node: &Node, token: &str, method: &str, url: &str, body: Option<Value>) -> Value {
    let header = format!("X-Auth-Token: {token}");
    let data = body.map(|b| b.to_string());
    let mut args = vec![
        "-X",
        method,
        "-H",
        &header,
        "-H",
        "Content-Type: application/json",
    ];
    if let Some(data) = &data {
        args.extend(["--data", data]);
    }
    args.push(url);
    let (status, headers, body) = http(node, "keystone", &args);
    assert!(
        (200..300).contains(&status),
        "{method} {url}: {status}\n{headers}\n{body}"
    );
    serde_json::from_str(&body).unwrap_or(Value::Null)
}
