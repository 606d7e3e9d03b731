"""The Pod Security Standards' "restricted" profile (which includes "baseline"), checked on a pod spec.

Written from the Kubernetes documentation, "Pod Security Standards" (concepts/security/
pod-security-standards): each control below is one row of its Baseline and Restricted tables, for
the pod and every container, init container and ephemeral container."""

BASELINE_CAPABILITIES = {
    *("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE"),
    *("SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"),
}
SAFE_SYSCTLS = {
    *("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start"),
    *("net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports"),
    *("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl"),
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUMES = {
    *("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected"),
    "secret",
}


def containers(spec: dict) -> list[dict]:
    return [
        *spec.get("initContainers", []),
        *spec.get("containers", []),
        *spec.get("ephemeralContainers", []),
    ]


def violations(spec: dict, annotations: dict | None = None) -> list[str]:
    """Every restricted-profile rule the pod spec breaks (empty: it is admitted)."""
    found = _baseline_pod(spec, annotations or {}) + _restricted_pod(spec)
    pod_sc = spec.get("securityContext") or {}
    for c in containers(spec):
        found += [f"{c['name']}: {v}" for v in _container(c, pod_sc)]
    return found


def _baseline_pod(spec: dict, annotations: dict) -> list[str]:
    sc = spec.get("securityContext") or {}
    found = [f"{ns} is set" for ns in ("hostNetwork", "hostPID", "hostIPC") if spec.get(ns)]
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("hostProcess")
    found += [f"hostPath volume {v['name']}" for v in spec.get("volumes", []) if "hostPath" in v]
    found += [f"unsafe sysctl {s['name']}" for s in sc.get("sysctls", []) if s["name"] not in SAFE_SYSCTLS]
    found += _selinux(sc.get("seLinuxOptions")) + _apparmor(sc.get("appArmorProfile"))
    apparmor = [
        v for k, v in annotations.items() if k.startswith("container.apparmor.security.beta.kubernetes.io/")
    ]
    found += [
        f"AppArmor annotation {v}"
        for v in apparmor
        if v != "runtime/default" and not v.startswith("localhost/")
    ]
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append("pod seccomp Unconfined")
    return found


def _restricted_pod(spec: dict) -> list[str]:
    sc = spec.get("securityContext") or {}
    found = []
    for v in spec.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {v['name']} of type {sorted(kinds)}")
    every = containers(spec)
    if not sc.get("runAsNonRoot") and not all(
        (c.get("securityContext") or {}).get("runAsNonRoot") for c in every
    ):
        found.append("runAsNonRoot is not true for the pod or every container")
    if sc.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    pod_seccomp = (sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in ("RuntimeDefault", "Localhost") and not all(
        ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
        in ("RuntimeDefault", "Localhost")
        for c in every
    ):
        found.append("seccompProfile is not RuntimeDefault/Localhost for the pod or every container")
    return found


def _container(c: dict, pod_sc: dict) -> list[str]:
    sc = c.get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    found = []
    if sc.get("privileged"):
        found.append("privileged")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("hostProcess")
    found += [f"hostPort {p['hostPort']}" for p in c.get("ports", []) if p.get("hostPort")]
    found += [f"capability {cap} added" for cap in caps.get("add", []) if cap not in BASELINE_CAPABILITIES]
    found += [
        f"capability {cap} added (restricted)" for cap in caps.get("add", []) if cap != "NET_BIND_SERVICE"
    ]
    if "ALL" not in caps.get("drop", []):
        found.append("capabilities do not drop ALL")
    if sc.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation is not false")
    if sc.get("runAsNonRoot") is False:
        found.append("runAsNonRoot false")
    if sc.get("runAsUser") == 0:
        found.append("runAsUser 0")
    if sc.get("procMount") not in (None, "Default"):
        found.append(f"procMount {sc['procMount']}")
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append("seccomp Unconfined")
    return found + _selinux(sc.get("seLinuxOptions")) + _apparmor(sc.get("appArmorProfile"))


def _selinux(options: dict | None) -> list[str]:
    options = options or {}
    found = [f"seLinuxOptions.{k} set" for k in ("user", "role") if options.get(k)]
    if options.get("type") not in SELINUX_TYPES:
        found.append(f"seLinuxOptions.type {options['type']}")
    return found


def _apparmor(profile: dict | None) -> list[str]:
    kind = (profile or {}).get("type")
    return [] if kind in (None, "RuntimeDefault", "Localhost") else [f"appArmorProfile {kind}"]
