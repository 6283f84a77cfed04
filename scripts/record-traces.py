#!/usr/bin/env python3
"""Record scheduler decisions from the real Linux 6.1 IPVS (../shared/ipvs-oracle) as simulate scenarios.

usage: scripts/record-traces.py PLAN... [--out DIR]      (default DIR: vs-sched/tests/scenarios)

A plan is a simulate scenario without `conn` lines, plus two recorder lines:
  vip ADDR:PORT        the virtual service (TCP) the plan's picks go to (required, before `sched`)
  end NAME N           reset the N oldest open connections that went to NAME and wait until IPVS has
                       expired and unbound them (becomes `conn NAME active -N` in the scenario)
Every `pick src ADDR:PORT` opens a real TCP connection from that address through IPVS to a real server that
answers (it stays ESTABLISHED, counted active): the scenario gets `conn NAME active +1` after it, and the
kernel's choice goes to NAME.expected. All plans run in one boot of the oracle VM.
"""
import os
import re
import subprocess
import sys
import tempfile

ORACLE = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'ipvs-oracle', 'run.sh')


def endpoint(text):
    if text.startswith('['):
        addr, _, port = text[1:].partition(']')
        return addr, int(port[1:]) if port else 0
    if text.count(':') == 1:
        addr, port = text.split(':')
        return addr, int(port)
    return text, 0


def fmt(addr, port):
    return f'[{addr}]:{port}' if ':' in addr else f'{addr}:{port}'


def ipvsadm_dest(vip, addr, port, opts):
    """-r ADDR:PORT -m -w W [-x U] [-y L] from `weight W [u U] [l L]`"""
    it = iter(opts)
    flags = {'weight': '-w', 'u': '-x', 'l': '-y'}
    args = []
    for key in it:
        args += [flags[key], next(it)]
    return f'-t {vip} -r {fmt(addr, port)} -m ' + ' '.join(args)


class Plan:
    def __init__(self, path):
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.lines = open(path).read().splitlines()
        self.vip = None
        self.dests = {}
        self.steps = []      # conns.py steps
        self.setup = []      # shell lines before conns.py
        self.scenario = []   # (kind, text): kind 'line' copied, 'pick' needs a conn line after it
        self.comments = []
        for raw in self.lines:
            line = raw.split('#', 1)[0].strip()
            if raw.strip().startswith('#'):
                self.comments.append(raw.strip())
            if not line:
                continue
            w = line.split()
            if w[0] == 'vip':
                self.vip = w[1]
                addr, _ = endpoint(w[1])
                self.setup.append(f'vip_add {addr}')
            elif w[0] == 'sched':
                flags = ''
                if len(w) > 2 and w[2] == 'flags':
                    flags = f' -b {w[3]}'
                self.setup.append(f'ipvsadm -A -t {self.vip} -s {w[1]}{flags}')
                self.scenario.append(('line', line))
            elif w[0] == 'dest':
                addr, port = endpoint(w[2])
                self.dests[w[1]] = (addr, port)
                self.setup.append(f'rs_add {addr}')
                self.steps.append(f'label {w[1]} {fmt(addr, port)}')
                self.steps.append(f'exec ipvsadm -a {ipvsadm_dest(self.vip, addr, port, w[3:])}')
                self.scenario.append(('line', line))
            elif w[0] == 'edit':
                addr, port = self.dests[w[1]]
                self.steps.append(f'exec ipvsadm -e {ipvsadm_dest(self.vip, addr, port, w[2:])}')
                self.scenario.append(('line', line))
            elif w[0] == 'del':
                addr, port = self.dests[w[1]]
                self.steps.append(f'exec ipvsadm -d -t {self.vip} -r {fmt(addr, port)}')
                self.scenario.append(('line', line))
            elif w[0] == 'pick':
                opts = dict(zip(w[1::2], w[2::2]))
                src = opts['src']
                addr, _ = endpoint(src)
                self.setup.append(f'client_add {addr}')
                self.steps.append(f'open {src} {self.vip} est')
                self.scenario.append(('pick', f'pick proto tcp src {src} dst {self.vip}'))
            elif w[0] == 'end':
                self.steps.append(f'reset_dest {w[1]} {w[2]}')
                self.steps.append('expire_resets')
                self.scenario.append(('line', f'conn {w[1]} active -{w[2]}'))
            else:
                sys.exit(f'{self.name}: unknown plan line: {line}')
        if not self.vip:
            sys.exit(f'{self.name}: no `vip` line')


def main():
    args = sys.argv[1:]
    out = 'vs-sched/tests/scenarios'
    if '--out' in args:
        i = args.index('--out')
        out = args[i + 1]
        del args[i:i + 2]
    plans = [Plan(p) for p in args]
    job = ['. /opt/ipvs/lib.sh', 'net_init']
    files = []
    tmp = tempfile.mkdtemp()
    seen = set()
    for plan in plans:
        for s in plan.setup:
            # addresses are added once per boot; services once per plan
            if s not in seen or s.startswith('ipvsadm'):
                job.append(s)
                seen.add(s)
        steps = os.path.join(tmp, f'{plan.name}.steps')
        with open(steps, 'w') as f:
            f.write('\n'.join(plan.steps) + '\n')
        files.append(steps)
        job.append(f'echo "=== PLAN {plan.name}"')
        job.append(f'python3 /opt/ipvs/conns.py {plan.name}.steps')
    script = os.path.join(tmp, 'job.sh')
    with open(script, 'w') as f:
        f.write('\n'.join(job) + '\n')
    result = subprocess.run([ORACLE, '-t', '900', script] + files, capture_output=True, text=True)
    sys.stderr.write(result.stderr[-2000:])
    if result.returncode != 0:
        sys.stdout.write(result.stdout)
        sys.exit('record-traces: the oracle run failed')
    picks = {}
    current = None
    for line in result.stdout.splitlines():
        m = re.match(r'=== PLAN (\S+)', line)
        if m:
            current = m.group(1)
            picks[current] = []
            continue
        m = re.match(r'open \d+ src \S+ dst \S+ -> (\S+)', line)
        if m and current:
            picks[current].append(m.group(1))
        if line.startswith('ERROR'):
            sys.exit(f'record-traces: {current}: {line}')
    for plan in plans:
        got = picks.get(plan.name, [])
        n_picks = sum(1 for k, _ in plan.scenario if k == 'pick')
        if len(got) != n_picks:
            sys.stdout.write(result.stdout)
            sys.exit(f'record-traces: {plan.name}: {len(got)} picks recorded, {n_picks} planned')
        lines = [f'# recorded from Linux 6.1 IPVS (ipvs-oracle) by scripts/record-traces.py from '
                 f'tests/oracle-plans/{plan.name}.plan; service tcp {plan.vip}']
        lines += plan.comments
        it = iter(got)
        for kind, text in plan.scenario:
            lines.append(text)
            if kind == 'pick':
                name = next(it)
                if name != 'none':
                    lines.append(f'conn {name} active +1')
        with open(os.path.join(out, f'{plan.name}.scenario'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        with open(os.path.join(out, f'{plan.name}.expected'), 'w') as f:
            f.write('\n'.join(got) + '\n')
        print(f'{plan.name}: {len(got)} picks recorded')


main()
