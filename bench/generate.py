"""Synthetic equity plans as a command file (the contract's JSON Lines), from a fixed seed.

    python -m bench.generate N OUT.jsonl [--seed 20240601] [--vesting]

Writes N commands: issuances opened over the first 60% of the stream (resolution + terms with
enough rights), allotments to thousands of holders (Japanese and Latin names, one group each,
each holder in 1-4 issuances), exercises and forfeits (never beyond what is outstanding, always
inside the exercise period), splits (dated after every exercise of their issuance), departures
and a few late allotments (dated back a few weeks; the only late entries, so they stay rare).
Dates otherwise never go backwards, so the common case is the one measured.

Every command is valid by construction: the generator keeps the same counters the domain
keeps (outstanding rights per holding, departures, the last exercise date per issuance) and
only emits what the domain accepts. It also counts the events the commands produce (1 per
command, plus 1 the first time a holder joins an issuance, plus the issuer's registration), and
writes them to a ``.meta.json`` next to the file.

With ``--vesting`` every issuance's terms vest (:data:`VESTING`: a quarter after 12 months,
then 1/48 a month for 36 months; unvested rights do not lapse at a departure, so departures
change no count) and an exercise only takes a holding whose last allotment is 4 years old (all
of it vested); without it the file is byte for byte the one it always was.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

GENERATOR_VERSION = 3
DEFAULT_SEED = 20240601
BASE_DAY = date(2008, 4, 1)
SPAN_DAYS = 15 * 365  # the stream covers ~15 years of corporate life
EXERCISE_TO = "2060-03-31"

FAMILY_JA = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田",
             "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水", "山崎", "森", "池田", "橋本",
             "阿部", "石川", "山下", "中島", "石井", "小川", "前田", "岡田", "長谷川", "藤田", "後藤", "近藤"]
GIVEN_JA = ["太郎", "花子", "一郎", "健", "翔太", "美咲", "大輔", "陽子", "直樹", "由美", "拓也", "恵子",
            "誠", "愛", "亮", "真由美", "剛", "さくら", "蓮", "結衣", "悠真", "陽菜", "和也", "智子"]
FAMILY_LA = ["Smith", "Müller", "García", "Dubois", "Rossi", "Johnson", "Nguyen", "Kowalski", "Silva",
             "O'Brien", "Jansen", "Andersson", "Novák", "Fernández", "Schmidt", "Martin", "Brown", "Lefèvre"]
GIVEN_LA = ["Anna", "John", "María", "Luc", "Giulia", "Michael", "Linh", "Piotr", "João", "Siobhán",
            "Sanne", "Erik", "Jiří", "Lucía", "Jürgen", "Claire", "Emma", "Noël"]
GROUPS = [("director", 0.05), ("executive_officer", 0.10), ("employee", 0.80), ("advisor", 0.05)]
# The schedule of --vesting plans: fully vested 48 months after the allotment (1,461 days at most).
VESTING = {"tranches": [{"portion": "1/4", "after_months": 12},
                        {"portion": "1/48", "after_months": 13, "every_months": 1, "occurrences": 36}],
           "unvested_lapse_on_departure": False}
FULLY_VESTED_DAYS = 1462


@dataclass
class PlanMeta:
    """What a generated file holds (written as OUT.meta.json)."""

    generator: int
    seed: int
    commands: int
    events: int
    issuances: int
    holders: int
    types: dict[str, int] = field(default_factory=dict)
    late_allotments: int = 0
    first_day: str = ""
    last_day: str = ""
    # The issuance with the most commands (the biggest as-of query), with its resolution date.
    query_issuance: str = ""
    query_issuance_from: str = ""
    query_issuance_holders: int = 0
    query_issuance_commands: int = 0
    vesting: bool = False  # the issuances' terms vest (--vesting)


def sizes_for(n: int) -> tuple[int, int]:
    """(issuances, holders) for a stream of n commands: thousands of holders past 10k commands."""
    issuances = 20 if n >= 10_000 else max(3, min(20, n // 500))
    holders = max(300, min(40_000, n // 25))
    return issuances, holders


def holder_name(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return f"{rng.choice(FAMILY_JA)} {rng.choice(GIVEN_JA)}"
    return f"{rng.choice(GIVEN_LA)} {rng.choice(FAMILY_LA)}"


class _Bag:
    """A set with O(1) add, remove and uniform random choice."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, x: str) -> None:
        if x not in self.index:
            self.index[x] = len(self.items)
            self.items.append(x)

    def discard(self, x: str) -> None:
        i = self.index.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.index[last] = i

    def choice(self, rng: random.Random) -> str:
        return self.items[rng.randrange(len(self.items))]

    def __len__(self) -> int:
        return len(self.items)


def generate(n: int, out: Path, seed: int = DEFAULT_SEED, vesting: bool = False) -> PlanMeta:
    """Write n commands to `out` (JSON Lines) and return what they hold (`vesting`: every
    issuance with :data:`VESTING`)."""
    rng = random.Random(seed)
    n_iss, n_holders = sizes_for(n)
    holders = []
    for h in range(n_holders):
        r, acc, grp = rng.random(), 0.0, "employee"
        for g, p in GROUPS:
            acc += p
            if r < acc:
                grp = g
                break
        holders.append((f"h{h:06d}", holder_name(rng), grp))
    # Each holder is in 1-4 issuances: the pools of holders per issuance.
    pools: list[list[int]] = [[] for _ in range(n_iss)]
    for h in range(n_holders):
        for k in rng.sample(range(n_iss), min(n_iss, rng.choice((1, 1, 2, 2, 3, 4)))):
            pools[k].append(h)
    for k in range(n_iss):
        if not pools[k]:
            pools[k].append(rng.randrange(n_holders))

    # Issuance k opens at stream index open_at[k]; splits at scheduled indexes.
    open_at = [int(k * 0.6 * n / n_iss) for k in range(n_iss)]
    split_at: dict[int, int] = {}
    for k in range(n_iss):
        for _ in range(rng.choice((0, 1, 1, 2))):
            i = rng.randrange(open_at[k] + (n - open_at[k]) // 3, n)
            split_at[i] = k
    opens = {i: k for k, i in enumerate(open_at)}

    iss_ids = [f"plan-{2008 + k // 2}-{'ab'[k % 2]}{k:02d}" for k in range(n_iss)]
    currency = ["USD" if k % 5 == 4 else "JPY" for k in range(n_iss)]
    terms_of: list[dict | None] = [None] * n_iss
    opened: list[int] = []
    # State the domain keeps, kept here so that every command is accepted.
    outstanding: dict[tuple[int, str], int] = {}
    last_on: dict[tuple[int, str], int] = {}  # last dated entry of a holding (ordinal)
    all_forfeited: set[tuple[int, str]] = set()
    live: list[_Bag] = [_Bag() for _ in range(n_iss)]  # holders with rights outstanding
    known_holder: set[str] = set()
    joined: set[tuple[int, str]] = set()
    departed: set[str] = set()
    leavers = _Bag()  # holders known and still in office

    meta = PlanMeta(GENERATOR_VERSION, seed, 0, 0, n_iss, n_holders, vesting=vesting)
    last_allot: dict[tuple[int, str], int] = {}  # --vesting: the latest allotment of a holding
    floor = BASE_DAY.toordinal()
    per_issuance: dict[str, int] = {}
    written = 0
    events = 0

    def day_at(i: int) -> int:
        return max(floor, BASE_DAY.toordinal() + i * SPAN_DAYS // max(1, n))

    with out.open("w", encoding="utf-8") as f:

        def emit(cmd: dict) -> None:
            nonlocal written
            if "issuance" in cmd:
                per_issuance[cmd["issuance"]] = per_issuance.get(cmd["issuance"], 0) + 1
            f.write(json.dumps(cmd, ensure_ascii=False, separators=(", ", ": ")))
            f.write("\n")
            written += 1
            meta.types[cmd["type"]] = meta.types.get(cmd["type"], 0) + 1

        i = 0
        while written < n:
            today = day_at(i)
            iso = date.fromordinal(today).isoformat()
            cid = f"c{written:07d}"
            k_open = opens.get(i)
            if k_open is not None and terms_of[k_open] is None:
                # Resolution, then terms (two commands).
                k = k_open
                rights = 100 * n + 1000
                emit({"id": cid, "type": "pass_resolution", "issuance": iss_ids[k], "issuer": "Bench Holdings K.K.",
                      "body": "shareholders_meeting" if k % 3 == 0 else "board_of_directors",
                      "resolved_on": iso, "title": f"Stock acquisition rights, series {k + 1}",
                      "max_rights": rights, "actor": "secretary"})
                events += 2 if k == 0 else 1  # the first resolution also registers the issuer
                if written < n:
                    usd = currency[k] == "USD"
                    terms = {"id": f"c{written:07d}", "type": "set_terms", "issuance": iss_ids[k],
                             "decided_on": iso, "rights": rights, "shares_per_right": 100 if k % 2 else 200,
                             "price_per_right": "12.50" if usd else "647000", "currency": currency[k],
                             "exercise_price_per_share": "0.75" if usd else "1", "allotment_date": iso,
                             "exercise_from": date.fromordinal(today + 365).isoformat(),
                             "exercise_to": EXERCISE_TO, "actor": "secretary"}
                    if k % 4 == 1:
                        terms["exercisable_only_after_departure"] = False
                    if vesting:
                        terms["vesting"] = VESTING
                    emit(terms)
                    events += 1
                terms_of[k] = {"allot_from": today, "exercise_from": today + 365}
                opened.append(k)
                i += 1
                continue
            if not opened:
                i += 1
                continue
            k_split = split_at.get(i)
            if k_split is not None and terms_of[k_split] is not None:
                # Dated after every exercise of the issuance (those are all dated <= today).
                floor = today + 1
                ratio = rng.choice(("2", "2", "3", "3/2"))
                emit({"id": cid, "type": "adjust_shares", "issuance": iss_ids[k_split], "ratio": ratio,
                      "effective_on": date.fromordinal(today + 1).isoformat(), "actor": "secretary",
                      "reason": f"share split {ratio}:1"})
                events += 1
                i += 1
                continue
            r = rng.random()
            exercisable = [k for k in opened if today >= terms_of[k]["exercise_from"] and len(live[k])]
            if r < 0.10 and exercisable:
                k = rng.choice(exercisable)
                h = live[k].choice(rng)
                if vesting:  # only a fully vested holding: a few tries, else nothing today
                    for _ in range(8):
                        if last_allot[(k, h)] + FULLY_VESTED_DAYS <= today:
                            break
                        h = live[k].choice(rng)
                    else:
                        i += 1
                        continue
                n_out = outstanding[(k, h)]
                rights = rng.randint(1, n_out)
                cmd = {"id": cid, "type": "exercise_rights", "issuance": iss_ids[k], "holder": h,
                       "rights": rights, "exercised_on": iso}
                if rng.random() < 0.3:
                    cmd["delivery"] = "treasury_shares"
                emit(cmd)
                _take(outstanding, live, k, h, rights)
                last_on[(k, h)] = max(last_on[(k, h)], today)
                events += 1
            elif r < 0.15 and any(len(live[k]) for k in opened):
                k = rng.choice([k for k in opened if len(live[k])])
                h = live[k].choice(rng)
                n_out = outstanding[(k, h)]
                if rng.random() < 0.3:
                    rights: int | str = "all"
                    all_forfeited.add((k, h))
                    taken = n_out
                else:
                    rights = taken = rng.randint(1, n_out)
                emit({"id": cid, "type": "forfeit_rights", "issuance": iss_ids[k], "holder": h, "rights": rights,
                      "forfeited_on": iso, "reason": rng.choice(("left the company", "waived", "disciplinary"))})
                _take(outstanding, live, k, h, taken)
                last_on[(k, h)] = max(last_on[(k, h)], today)
                events += 1
            elif r < 0.153 and len(leavers):
                h = leavers.choice(rng)
                leavers.discard(h)
                departed.add(h)
                # The day after today: no allotment of the holder is dated on or after it.
                emit({"id": cid, "type": "record_departure", "holder": h,
                      "departed_on": date.fromordinal(today + 1).isoformat(), "actor": "hr"})
                events += 1
            else:
                k = rng.choice(opened)
                late = False
                for _ in range(8):
                    hi = rng.choice(pools[k])
                    h, name, grp = holders[hi]
                    if h not in departed:
                        break
                else:
                    i += 1
                    continue  # this issuance's pool has left office: another command next time
                day = today
                key = (k, h)
                if r > 0.997 and key in last_on and key not in all_forfeited:
                    # A late allotment (history entered from paper records): a few weeks back.
                    day = max(terms_of[k]["allot_from"], today - rng.randint(1, 45))
                    late = day < last_on[key]
                rights = rng.choice((1, 1, 2, 3, 5, 5, 10, 20))
                cmd = {"id": cid, "type": "allot_rights", "issuance": iss_ids[k], "holder": h, "name": name,
                       "group": grp, "rights": rights, "allotted_on": date.fromordinal(day).isoformat(),
                       "payment": rng.choice(("offset", "offset", "offset", "cash", "cash", "gratis"))}
                if rng.random() < 0.05:
                    cmd["actor"] = "secretary"
                    cmd["reason"] = "annual grant"
                emit(cmd)
                events += 1
                if key not in joined:
                    joined.add(key)
                    events += 1  # Holder registered, or joined this issuance
                if h not in known_holder:
                    known_holder.add(h)
                    leavers.add(h)
                outstanding[key] = outstanding.get(key, 0) + rights
                live[k].add(h)
                last_on[key] = max(last_on.get(key, day), day)
                last_allot[key] = max(last_allot.get(key, day), day)
                meta.late_allotments += late
            i += 1
    meta.commands = written
    meta.events = events
    meta.first_day = BASE_DAY.isoformat()
    meta.last_day = date.fromordinal(day_at(i)).isoformat()
    # The issuance with the most commands: the biggest one-issuance as-of query.
    counts = [0] * n_iss
    for k, _h in joined:
        counts[k] += 1
    best = max(range(n_iss), key=lambda k: (per_issuance.get(iss_ids[k], 0), -k))
    meta.query_issuance = iss_ids[best]
    meta.query_issuance_holders = counts[best]
    meta.query_issuance_commands = per_issuance.get(iss_ids[best], 0)
    meta.query_issuance_from = date.fromordinal(BASE_DAY.toordinal() + open_at[best] * SPAN_DAYS // max(1, n)).isoformat()
    return meta


def _take(outstanding: dict, live: list[_Bag], k: int, h: str, rights: int) -> None:
    left = outstanding[(k, h)] - rights
    outstanding[(k, h)] = left
    if left == 0:
        live[k].discard(h)


def plan_file(folder: Path, n: int, seed: int = DEFAULT_SEED, vesting: bool = False) -> tuple[Path, PlanMeta]:
    """The command file for (n, seed[, vesting]) in `folder`, generated once and reused."""
    path = folder / f"plan-s{seed}-n{n}{'-vesting' if vesting else ''}.jsonl"
    meta_path = path.with_suffix(".meta.json")
    if path.exists() and meta_path.exists():
        try:
            meta = PlanMeta(**json.loads(meta_path.read_text()))
            if meta.generator == GENERATOR_VERSION and meta.commands == n and meta.vesting == vesting:
                return path, meta
        except (TypeError, ValueError):
            pass
    tmp = path.with_suffix(".tmp")
    meta = generate(n, tmp, seed, vesting)
    tmp.replace(path)
    meta_path.write_text(json.dumps(asdict(meta), indent=1))
    return path, meta


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int, help="number of commands")
    p.add_argument("out", type=Path, help="the command file to write")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--vesting", action="store_true", help="every issuance's terms vest (see VESTING)")
    a = p.parse_args(argv)
    meta = generate(a.n, a.out, a.seed, a.vesting)
    json.dump(asdict(meta), sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
