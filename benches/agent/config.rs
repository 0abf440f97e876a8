//! Configuration in pods (issue 15): what a pod that reads a ConfigMap and a Secret (env,
//! and both as volumes) costs at start beside the same pod without them, and how long a
//! ConfigMap change takes to reach the file of a running pod's volume.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{wait_for, Bench};

pub struct ConfigFigures {
    /// apply → container running, plain pod.
    pub plain_start: Vec<Duration>,
    /// apply → container running, pod with env from and volumes of a ConfigMap and Secret.
    pub config_start: Vec<Duration>,
    /// ConfigMap apply → new value in the running pod's volume file.
    pub propagation: Vec<Duration>,
}

fn pod(name: &str, with_config: bool) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  \
         terminationGracePeriodSeconds: 0\n  containers:\n    - name: main\n      \
         image: busybox:1.35\n      command: [sleep, \"1000\"]\n"
    );
    if with_config {
        yaml.push_str(
            "      envFrom: [{configMapRef: {name: bench}}]\n      \
             env: [{name: TOKEN, valueFrom: {secretKeyRef: {name: bench, key: token}}}]\n      \
             volumeMounts: [{name: c, mountPath: /config}, {name: s, mountPath: /secret}]\n  \
             volumes:\n    - {name: c, configMap: {name: bench}}\n    \
             - {name: s, secret: {secretName: bench}}\n",
        );
    }
    yaml
}

fn config(value: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  value: \"{value}\"\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: bench\nstringData:\n  token: t\n"
    )
}

impl Bench {
    fn start_and_stop(&self, name: &str, with_config: bool) -> Duration {
        let start = Instant::now();
        self.apply(&pod(name, with_config));
        wait_for(Duration::from_secs(20), "container running", || {
            self.containers()
                .iter()
                .any(|c| c.join("init.pid").exists())
                .then_some(())
        });
        let took = start.elapsed();
        self.cli(&["delete", "pod", name]);
        wait_for(Duration::from_secs(20), "pod gone", || {
            self.containers().is_empty().then_some(())
        });
        took
    }

    /// The file `value` of volume `c` of the one pod running.
    fn volume_file(&self) -> PathBuf {
        let pods = std::fs::read_dir(self.state.join("pods")).expect("pods dir");
        let pod = pods.filter_map(|e| e.ok()).next().expect("a pod").path();
        pod.join("volumes/c/value")
    }

    pub fn config_in_pods(&self, runs: usize) -> ConfigFigures {
        self.apply(&config(0));
        let mut figures = ConfigFigures {
            plain_start: Vec::new(),
            config_start: Vec::new(),
            propagation: Vec::new(),
        };
        for i in 0..runs {
            figures
                .plain_start
                .push(self.start_and_stop(&format!("p{i}"), false));
            figures
                .config_start
                .push(self.start_and_stop(&format!("c{i}"), true));
        }
        self.apply(&pod("reader", true));
        wait_for(Duration::from_secs(20), "reader running", || {
            self.containers()
                .iter()
                .any(|c| c.join("init.pid").exists())
                .then_some(())
        });
        let file = self.volume_file();
        for i in 1..=runs {
            let start = Instant::now();
            self.apply(&config(i));
            wait_for(Duration::from_secs(30), "the new value in the file", || {
                let text = std::fs::read_to_string(&file).ok()?;
                (text == i.to_string()).then_some(())
            });
            figures.propagation.push(start.elapsed());
        }
        self.cli(&["delete", "pod", "reader"]);
        wait_for(Duration::from_secs(20), "reader gone", || {
            self.containers().is_empty().then_some(())
        });
        figures
    }
}
