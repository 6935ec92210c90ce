#!/usr/bin/env python3
"""Independent Python reference of poold's semantics (SPEC.md), used by the
end-to-end test to compute what every pool must hold. Python 3 stdlib only.

It shares no code with the server: it validates lines itself, applies them
with the documented semantics, keeps windowed counters as plain lists of
events, and mirrors each rule of rules/ by hand (RULES below: a `where` in
the canonical tag-expression grammar plus a Python `match`).

Semantics implemented (the contract the server follows):
  - a record (no "op") replaces every catalog field, free tags and attrs of
    the SKU (absent = unknown: "" / 0 / false / none); windowed counters stay.
  - upsert overwrites the fields present ("tags" replaces the free tag set,
    "attrs" the whole attrs object); price sets price (and list_price if
    present); stock sets stock; order adds qty to sales and amount to gmv;
    view/click/cart add 1; tag adds then removes free tags; delete removes
    the SKU with its tags, attrs and counters.
  - any op but delete on an unknown SKU creates it with only what it
    carries; delete of an unknown SKU is a no-op.
  - event clock: the largest ts of any applied line. At clock `now` an
    event at t counts in 1h iff m(t) > m(now) - 60, in 24h iff
    m(t) > m(now) - 1440 (m = minute slot), in 7d iff h(t) > h(now) - 168
    (h = hour slot); gmv sums each slot's amounts in arrival order, then the
    slots in ascending order.
  - pool = SKUs where `where` holds and `match` is true, minus exclude,
    top `limit` by rank (descending, ties by SKU id) when ranked, plus the
    pinned SKUs that exist; empty outside the `active` range of the clock.

Command line (debugging aid):
    reference.py CATALOG.ndjson [EVENTS.ndjson] [--upto N]
prints the clock, SKU count, rejects by reason and every pool's size.
"""
import datetime
import json
import re
import sys

# --------------------------------------------------------------------------
# Tag expressions:  expr := term {"|" term};  term := factor {"&" factor};
# factor := "!" factor | "(" expr ")" | TAG | "*"

TAG_RE = re.compile(r"[A-Za-z0-9_:/.+-]+")


class TagExprError(ValueError):
    pass


def parse_tagexpr(text):
    """Returns a tree: ("tag", name) | ("all",) | ("not", x) | ("and", [..]) | ("or", [..])."""
    toks = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "&|!()*":
            toks.append(c)
            i += 1
        else:
            m = TAG_RE.match(text, i)
            if not m:
                raise TagExprError(f"bad character {c!r} at column {i + 1}")
            toks.append(("tag", m.group(0)))
            i = m.end()
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def take():
        t = peek()
        pos[0] += 1
        return t

    def expr():
        xs = [term()]
        while peek() == "|":
            take()
            xs.append(term())
        return xs[0] if len(xs) == 1 else ("or", xs)

    def term():
        xs = [factor()]
        while peek() == "&":
            take()
            xs.append(factor())
        return xs[0] if len(xs) == 1 else ("and", xs)

    def factor():
        t = take()
        if t == "!":
            return ("not", factor())
        if t == "(":
            x = expr()
            if take() != ")":
                raise TagExprError("expected )")
            return x
        if t == "*":
            return ("all",)
        if isinstance(t, tuple):
            return t
        raise TagExprError(f"expected a tag, '(' or '!' but found {t!r}")

    tree = expr()
    if peek() is not None:
        raise TagExprError(f"unexpected {peek()!r}")
    return tree


def eval_tagexpr(tree, tags):
    k = tree[0]
    if k == "tag":
        return tree[1] in tags
    if k == "all":
        return True
    if k == "not":
        return not eval_tagexpr(tree[1], tags)
    if k == "and":
        return all(eval_tagexpr(x, tags) for x in tree[1])
    return any(eval_tagexpr(x, tags) for x in tree[1])


# --------------------------------------------------------------------------
# Validation (which lines the server must reject, and why)

OPS = {"upsert", "delete", "price", "stock", "order", "view", "click", "cart", "tag"}
OP_FIELDS = {
    "record": {"market", "category", "brand", "seller", "price", "list_price", "stock", "rating",
               "reviews", "lazmall", "free_shipping", "tags", "attrs"},
    "price": {"price", "list_price"},
    "stock": {"stock"},
    "order": {"qty", "amount"},
    "tag": {"add", "remove"},
    "delete": set(), "view": set(), "click": set(), "cart": set(),
}
OP_FIELDS["upsert"] = OP_FIELDS["record"]
STR_FIELDS = {"market", "category", "brand", "seller"}
NUM_FIELDS = {"price": 1e9, "list_price": 1e9, "amount": 1e9, "rating": 5.0}
INT_FIELDS = {"stock": (0, 10**9), "reviews": (0, 10**9), "qty": (1, 10**6)}
BOOL_FIELDS = {"lazmall", "free_shipping"}
TAG_LIST_FIELDS = {"tags", "add", "remove"}
TS_MIN = 946684800000   # 2000-01-01T00:00Z
TS_MAX = 4133980800000  # 2101-01-01T00:00Z
FREE_TAG_RE = re.compile(r"^[A-Za-z0-9_:/.+-]{1,100}$")


def tag_reserved(t):
    return t in ("lazmall", "free_shipping", "in_stock") or t.startswith(
        ("market:", "brand:", "category:", "seller:"))


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(obj):
    """Reject reason (the server's /metrics label) for a parsed line, or None."""
    if not isinstance(obj, dict):
        return "bad_json"
    op = obj.get("op", "record")
    if "op" in obj:
        if not isinstance(obj["op"], str):
            return "bad_type"
        if op not in OPS:
            return "unknown_op"
    sku = obj.get("sku")
    if "sku" in obj and not isinstance(sku, str):
        return "bad_type"
    if not sku:
        return "missing_sku"
    if len(sku.encode()) > 128:
        return "bad_value"
    for f in OP_FIELDS[op]:
        if f not in obj:
            continue
        v = obj[f]
        if f in STR_FIELDS:
            if not isinstance(v, str):
                return "bad_type"
        elif f in NUM_FIELDS:
            if not is_num(v):
                return "bad_type"
            if not (0 <= v <= NUM_FIELDS[f]):
                return "bad_value"
        elif f in INT_FIELDS:
            if not is_num(v):
                return "bad_type"
            lo, hi = INT_FIELDS[f]
            if v != int(v) or not (lo <= v <= hi):
                return "bad_value"
        elif f in BOOL_FIELDS:
            if not isinstance(v, bool):
                return "bad_type"
        elif f in TAG_LIST_FIELDS:
            if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
                return "bad_type"
            if len(v) > 64:
                return "too_many_tags"
            if any(not FREE_TAG_RE.match(t) or tag_reserved(t) for t in v):
                return "bad_tag"
        elif f == "attrs":
            if not isinstance(v, dict):
                return "bad_type"
    if "ts" in obj:
        ts = obj["ts"]
        if isinstance(ts, str):
            try:
                ts = iso_ms(ts)
            except ValueError:
                return "bad_value"
        elif not is_num(ts) or ts != int(ts):
            return "bad_type" if not is_num(ts) else "bad_value"
        if not (TS_MIN <= ts < TS_MAX):
            return "bad_value"
    required = {"price": ["price"], "stock": ["stock"], "order": ["qty", "amount"]}.get(op, [])
    if any(f not in obj for f in required):
        return "missing_field"
    if op == "tag" and "add" not in obj and "remove" not in obj:
        return "missing_field"
    return None


def iso_ms(s):
    """ms since epoch of an ISO-8601 date-time (a missing zone means UTC)."""
    t = s.replace("Z", "+00:00")
    if len(t) == 10:
        t += "T00:00:00"
    d = datetime.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1000))


# --------------------------------------------------------------------------
# SKU state

class Sku:
    __slots__ = ("id", "market", "category", "brand", "seller", "price", "list_price", "stock",
                 "rating", "reviews", "lazmall", "free_shipping", "tags", "attrs", "events")

    def __init__(self, sku_id):
        self.id = sku_id
        self.events = []  # (ts, kind, qty, amount) in arrival order; kind o/v/c/k
        self.reset()

    def reset(self):
        self.market = self.category = self.brand = self.seller = ""
        self.price = self.list_price = self.rating = 0.0
        self.stock = self.reviews = 0
        self.lazmall = self.free_shipping = False
        self.tags = set()
        self.attrs = None

    def set_fields(self, obj):
        for f in ("market", "category", "brand", "seller", "price", "list_price", "stock",
                  "rating", "reviews", "lazmall", "free_shipping"):
            if f in obj:
                setattr(self, f, obj[f])
        if "tags" in obj:
            self.tags = set(obj["tags"])
        if "attrs" in obj:
            self.attrs = obj["attrs"]

    @property
    def top_category(self):
        return self.category.split("/", 1)[0]

    @property
    def discount(self):
        return 1.0 - self.price / self.list_price if self.list_price > 0 else 0.0

    def all_tags(self):
        t = set(self.tags)
        if self.market:
            t.add("market:" + self.market)
        if self.brand:
            t.add("brand:" + self.brand)
        if self.category:
            t.add("category:" + self.top_category)
            t.add("category:" + self.category)
        if self.seller:
            t.add("seller:" + self.seller)
        if self.lazmall:
            t.add("lazmall")
        if self.free_shipping:
            t.add("free_shipping")
        if self.stock > 0:
            t.add("in_stock")
        return t


WINDOWS = {"1h": 60, "24h": 1440}  # in minute slots; 7d is 168 hour slots


def window_sums(events, now):
    """{metric_window: value} at clock `now` for the metrics of SPEC."""
    out = {}
    m_now, h_now = now // 60000, now // 3600000
    for w in ("1h", "24h", "7d"):
        if w == "7d":
            inside = [e for e in events if e[0] // 3600000 > h_now - 168]
            slot_of = 3600000
        else:
            inside = [e for e in events if e[0] // 60000 > m_now - WINDOWS[w]]
            slot_of = 60000
        sales = views = clicks = carts = 0
        slots = {}
        for ts, kind, qty, amount in inside:
            if kind == "o":
                sales += qty
                s = ts // slot_of
                slots[s] = slots.get(s, 0.0) + amount
            elif kind == "v":
                views += 1
            elif kind == "c":
                clicks += 1
            else:
                carts += 1
        gmv = 0.0
        for s in sorted(slots):
            gmv += slots[s]
        out["sales_" + w] = sales
        out["gmv_" + w] = gmv
        out["views_" + w] = views
        out["clicks_" + w] = clicks
        out["carts_" + w] = carts
    return out


class View:
    """What a rule's match/rank sees (the Lua `s`): unknown strings "",
    unknown numbers 0, s.attrs.x None when absent, s.has(tag)."""

    def __init__(self, sku, now):
        self._s = sku
        self._now = now
        self._w = None

    def __getattr__(self, name):
        s = self._s
        if name in ("market", "category", "brand", "seller", "price", "list_price", "stock",
                    "rating", "reviews", "lazmall", "free_shipping", "discount", "top_category"):
            return getattr(s, name)
        if name == "sku":
            return s.id
        if name == "attrs":
            return Attrs(s.attrs)
        if self._w is None:
            self._w = window_sums(s.events, self._now)
        if name in self._w:
            return self._w[name]
        raise AttributeError(name)

    def has(self, tag):
        return tag in self._s.all_tags()


class Attrs:
    def __init__(self, d):
        self._d = d or {}

    def __getattr__(self, name):
        return self._d.get(name)


class Rule:
    def __init__(self, name, where="*", match=None, rank=None, limit=None, pin=(), exclude=(),
                 active=None):
        self.name = name
        self.where = where
        self.tree = parse_tagexpr(where)
        self.match = match
        self.rank = rank
        self.limit = limit
        self.pin = list(pin)
        self.exclude = set(exclude)
        self.active = (iso_ms(active[0]), iso_ms(active[1])) if active else None


class Reference:
    def __init__(self):
        self.skus = {}
        self.clock = 0
        self.rejects = {}

    # -- input ------------------------------------------------------------
    def apply_text(self, text):
        """Applies an NDJSON body; returns [(line_number, reason)] of the
        rejected lines (1-based line numbers, blank lines skipped)."""
        rejected = []
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                reason = validate(obj)
            except ValueError:
                reason = "bad_json"
            if reason:
                rejected.append((n, reason))
                self.rejects[reason] = self.rejects.get(reason, 0) + 1
                continue
            self.apply(obj)
        return rejected

    def apply(self, ev):
        op = ev.get("op", "record")
        ts = ev.get("ts")
        if isinstance(ts, str):
            ts = iso_ms(ts)
        if ts is not None and ts > self.clock:
            self.clock = ts
        sid = ev["sku"]
        s = self.skus.get(sid)
        if op == "delete":
            self.skus.pop(sid, None)
            return
        if s is None:
            s = self.skus[sid] = Sku(sid)
        if op == "record":
            s.reset()
            s.set_fields(ev)
        elif op in ("upsert", "price", "stock"):
            s.set_fields({k: v for k, v in ev.items() if k in OP_FIELDS[op]})
        elif op == "tag":
            s.tags |= set(ev.get("add", []))
            s.tags -= set(ev.get("remove", []))
        else:
            t = ts if ts is not None else self.clock
            if t // 3600000 <= self.clock // 3600000 - 168:
                return  # stale: outside every window when it arrives
            if op == "order":
                s.events.append((t, "o", ev["qty"], float(ev["amount"])))
            else:
                s.events.append((t, {"view": "v", "click": "c", "cart": "k"}[op], 0, 0.0))

    # -- pools ------------------------------------------------------------
    def all_tags(self):
        """{sku: set of tags} of every live SKU (one pass, for many queries)."""
        return {sid: s.all_tags() for sid, s in self.skus.items()}

    def where_set(self, where, tags=None):
        tree = parse_tagexpr(where) if isinstance(where, str) else where
        tags = self.all_tags() if tags is None else tags
        return {sid for sid, t in tags.items() if eval_tagexpr(tree, t)}

    def pools(self, rules, now=None):
        """{name: members} for several rules, sharing one tag pass."""
        tags = self.all_tags()
        return {r.name: self.pool(r, now, tags) for r in rules}

    def ranked_order(self, rule, now=None):
        """Members of a ranked pool in the order the API lists them: the
        pins (list order), then the candidates by rank, ties by SKU id."""
        now = self.clock if now is None else now
        members = self.pool(rule, now)
        pins = [p for p in rule.pin if p in members]
        rest = [sid for sid in members if sid not in pins]
        rest.sort(key=lambda sid: (-rule.rank(View(self.skus[sid], now)), sid))
        return pins + rest

    def pool(self, rule, now=None, tags=None):
        now = self.clock if now is None else now
        if rule.active and not (rule.active[0] <= now < rule.active[1]):
            return set()
        cands = []
        for sid in self.where_set(rule.tree, tags):
            if sid in rule.exclude:
                continue
            v = View(self.skus[sid], now)
            if rule.match is None or rule.match(v):
                cands.append((v, sid))
        if rule.rank is not None and rule.limit is not None:
            cands.sort(key=lambda c: (-rule.rank(c[0]), c[1]))
            cands = cands[:rule.limit]
        members = {sid for _, sid in cands}
        members |= {p for p in rule.pin if p in self.skus and p not in rule.exclude}
        return members

    def explain(self, sid, now=None):
        """State of one SKU as a dict (for failure messages)."""
        s = self.skus.get(sid)
        if s is None:
            return None
        now = self.clock if now is None else now
        d = {k: getattr(s, k) for k in ("market", "category", "brand", "seller", "price",
                                          "list_price", "stock", "rating", "reviews", "lazmall",
                                          "free_shipping")}
        d["discount"] = s.discount
        d["tags"] = sorted(s.all_tags())
        d["attrs"] = s.attrs
        w = window_sums(s.events, now)
        d["counters"] = {k: v for k, v in w.items() if v}
        return d


# --------------------------------------------------------------------------
# The example rules of rules/*.lua, mirrored by hand. Keep in step with them.

BRAND_WEEK = {"b0001", "b0002", "b0003", "b0004", "b0005", "b0006", "b0007", "b0008",
              "b0009", "b0010", "b0011", "b0012"}
ECO_MATERIALS = {"bamboo", "recycled_plastic", "organic_cotton"}


def _eco_match(s):
    if s.attrs.material in ECO_MATERIALS:
        return True
    e = s.attrs.energy_class
    return s.has("eco") and s.attrs.origin == "local" and (e == "A" or e == "B")


def _premium_match(s):
    return (s.category[:12] == "electronics/" and 300 <= s.price < 3000
            and s.rating >= 4.2 and s.reviews >= 20)


RULE_LIST = [
    Rule("flash_sale_sg",
         where="market:SG & (lazmall | flash_eligible) & !blocked",
         match=lambda s: s.discount >= 0.30 and s.stock >= 20,
         active=("2026-11-08T00:00:00+08:00", "2026-11-15T00:00:00+08:00"),
         exclude=["SG-0000075", "SG-0000124"]),
    Rule("holiday_gifts",
         where="(giftable | category:toys | category:beauty & bundle) & in_stock & !blocked",
         match=lambda s: s.rating >= 4.0 and 10 <= s.price <= 150,
         pin=["MY-0000245", "ID-0000872", "SG-0000204"]),
    Rule("brand_week",
         where="(market:TH | market:VN) & in_stock & !blocked",
         match=lambda s: s.brand in BRAND_WEEK and s.discount >= 0.10),
    Rule("clearance",
         where="(clearance | in_stock & !premium) & !blocked",
         match=lambda s: s.discount >= 0.40 and s.stock > 0,
         rank=lambda s: s.discount, limit=300),
    Rule("bestsellers_24h",
         where="in_stock & !blocked",
         match=lambda s: s.sales_24h >= 5,
         exclude=["TH-0012592"]),
    Rule("eco_picks",
         where="(eco | category:home | category:baby | category:fashion) & !blocked",
         match=_eco_match),
    Rule("premium_electronics",
         where="lazmall | premium",
         match=_premium_match),
    Rule("free_shipping_my",
         where="market:MY & free_shipping & in_stock & !blocked",
         match=lambda s: s.market == "MY" and s.top_category != "grocery"
         and s.discount >= 0.15 and s.price < 50,
         pin=["MY-0000006", "MY-0000018"]),
]

# Fixtures of tests/e2e/fixtures/ (loaded by the e2e test next to rules/).
FIXTURE_RULES = [
    Rule("twelve_twelve_sg",
         where="market:SG & lazmall & !blocked",
         match=lambda s: s.discount >= 0.12,
         active=("2026-12-12T00:00:00+08:00", "2026-12-13T00:00:00+08:00")),
]

RULES = {r.name: r for r in RULE_LIST + FIXTURE_RULES}


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    upto = None
    if "--upto" in argv:
        upto = int(argv[argv.index("--upto") + 1])
        args.remove(str(upto))
    ref = Reference()
    for i, path in enumerate(args):
        with open(path) as f:
            text = f.read()
        if upto is not None and i == len(args) - 1 and i > 0:
            text = "\n".join(text.split("\n")[:upto])
        ref.apply_text(text)
    print(f"clock {ref.clock}  skus {len(ref.skus)}  rejects {dict(sorted(ref.rejects.items()))}")
    for name, members in ref.pools(RULES.values()).items():
        print(f"{name:24s} {len(members):6d}")


if __name__ == "__main__":
    main(sys.argv)
