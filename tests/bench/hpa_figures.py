"""The figures of `make bench-hpa` (tests/bench/hpa.sh), as the Markdown of BENCHMARKS.md's
section "Beside the real HPA", from each run's samples and the API server's audit log.

Usage: hpa_figures.py OUT RUNS SURGE_START AUDIT_LOG COMMIT KEDA_VERSION AUTOSCALER...
"""

import collections
import datetime
import json
import sys

HPA_CONTROLLER = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
USERS = {
    "system:serviceaccount:scalewise-system:scalewise": "sw",
    "system:serviceaccount:keda:keda-operator": "keda",
    "system:serviceaccount:keda:keda-metrics-server": "keda",
}
SLO_P95_SECONDS = 0.5
SLO_ERRORS = 0.01


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def figures(rows, who, surge_start):
    """First scale-out after the surge starts, replica-seconds, actions, seconds over the SLO."""
    first = None
    replica_seconds = over_slo = 0.0
    actions = peak = 0
    prev_t = prev_r = None
    for row in rows:
        t, r = float(row["t"]), int(row[who + "_replicas"])
        p95, errors = float(row[who + "_p95"]), float(row[who + "_errors"])
        peak = max(peak, r)
        if prev_t is not None:
            dt = t - prev_t
            replica_seconds += prev_r * dt
            if p95 > SLO_P95_SECONDS or errors > SLO_ERRORS:
                over_slo += dt
            if r != prev_r:
                actions += 1
        if first is None and r > 2:
            first = t - surge_start
        prev_t, prev_r = t, r
    return {"first": first, "rs": replica_seconds, "actions": actions, "slo": over_slo, "peak": peak}


def hpa_controller_share(event):
    """Which HPA a request of the HPA controller served: the HPA's (its Deployment, its HPA
    object, its events, resource metrics) or KEDA's (keda-hpa-<name>, external metrics)."""
    ref = event.get("objectRef", {})
    name, group = ref.get("name", ""), ref.get("apiGroup", "")
    if group == "external.metrics.k8s.io" or name.startswith("keda-"):
        return "keda"
    if group == "metrics.k8s.io" or name.startswith("hpa-web"):
        return "hpa"
    return None


def count_requests(audit, windows):
    """Requests per run and autoscaler (a watch counts once, when it starts), and the HPA
    controller's requests that served no one HPA (discovery)."""
    calls = [collections.Counter() for _ in windows]
    shared = [0 for _ in windows]
    with open(audit) as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            stage, verb = event.get("stage"), event.get("verb")
            if not ((stage == "ResponseStarted" and verb == "watch")
                    or (stage in ("ResponseComplete", "Panic") and verb != "watch")):
                continue
            user = event.get("user", {}).get("username")
            if user == HPA_CONTROLLER:
                who = hpa_controller_share(event)
            else:
                who = USERS.get(user)
                if who is None:
                    continue
            at = parse_time(event["requestReceivedTimestamp"])
            for i, (start, end) in enumerate(windows):
                if start <= at <= end:
                    if who is None:
                        shared[i] += 1
                    else:
                        calls[i][who] += 1
    return calls, shared


def main():
    out, runs, surge_start, audit, commit, keda_version = sys.argv[1:7]
    autoscalers = sys.argv[7:]
    runs, surge_start = int(runs), float(surge_start)
    names = {
        "hpa": "HPA (kube-controller-manager v1.37)",
        "sw": "scalewise",
        "keda": f"KEDA {keda_version} (its HPA)",
    }
    windows, results = [], []
    for run in range(1, runs + 1):
        with open(f"{out}/run-{run}.tsv") as f:
            header = f.readline().rstrip("\n").split("\t")
            rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
        with open(f"{out}/run-{run}.tsv.window") as f:
            start, end = (parse_time(x) for x in f.read().split())
        windows.append((start, end))
        results.append({who: figures(rows, who, surge_start) for who in autoscalers})
    calls, shared = count_requests(audit, windows)
    for i, result in enumerate(results):
        for who in autoscalers:
            result[who]["api"] = calls[i][who]

    def show(value):
        return "never" if value is None else f"{value:.0f}"

    count = "1 run" if runs == 1 else f"{runs} runs"
    print(f"Run on {datetime.date.today().isoformat()} at commit {commit}, {count}, with:\n")
    print("```sh\nmake bench-hpa\n```\n")
    print("| run | autoscaler | first scale-out (s) | replica-seconds | scale actions "
          "| seconds over the SLO | peak replicas | API requests |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for i, result in enumerate(results, 1):
        for who in autoscalers:
            x = result[who]
            print(f"| {i} | {names[who]} | {show(x['first'])} | {x['rs']:.0f} | {x['actions']} "
                  f"| {x['slo']:.0f} | {x['peak']} | {x['api']} |")
    print()
    print("Requests of the HPA controller that served neither HPA in particular (discovery), "
          "counted for no one: " + ", ".join(f"run {i}: {n}" for i, n in enumerate(shared, 1)) + ".")
    print()
    # A difference from the HPA is called noise when it is no larger than the largest spread of
    # one autoscaler's figure between runs; with one run nothing can be said.
    print("Against the HPA, the means of the runs:\n")
    for key, label in (("first", "first scale-out (s)"), ("rs", "replica-seconds"),
                       ("actions", "scale actions"), ("slo", "seconds over the SLO"),
                       ("api", "API requests")):
        values = {w: [r[w][key] for r in results if r[w][key] is not None] for w in autoscalers}
        if any(not v for v in values.values()):
            print(f"- {label}: not compared (an autoscaler never scaled out in a run)")
            continue
        mean = {w: sum(v) / len(v) for w, v in values.items()}
        spread = max(max(v) - min(v) for v in values.values())
        parts = []
        for who in autoscalers:
            if who == "hpa":
                continue
            diff = mean[who] - mean["hpa"]
            if runs < 2:
                verdict = "one run: the noise is unknown"
            elif abs(diff) <= spread:
                verdict = "within run-to-run noise"
            else:
                verdict = "beyond run-to-run noise"
            parts.append(f"{names[who]} {mean[who]:.0f} ({verdict})")
        print(f"- {label}: HPA {mean['hpa']:.0f}; " + "; ".join(parts)
              + (f"; the runs of one autoscaler differ by up to {spread:.1f}" if runs > 1 else ""))


if __name__ == "__main__":
    main()
