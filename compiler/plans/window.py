"""Convolutions computed in windows of output positions held on the accumulators.

One loop iteration computes P output positions of one output row, each with A accumulator
lanes (its output channels, rounded up so that positions pack the post-processing groups):
lane i * A + c holds channel c of position i. The MAC triggers (a subclass lists them: dot
form for convolutions and dense layers, element-wise form for depthwise ones) read their
activations from the window at word address xb + x, xb pointing at the iteration's first input
position, so the loop moves one register per iteration and every trigger takes immediates.
Post-processing then writes the P positions as whole rows of the output: rq (int8), bin, ter
or racc (exact int32) per lane group, with the per-channel banks loaded from parameter rows.

  body:   rin -> vmac.xb; x_off -> vmac.x, row -> vmac.dmac (base -> vmac.base when it moves)
          rout (+ offset) -> vmac.rq   per group of G lanes
  loops:  x over windows (nx), y over output rows; passes over channel blocks of W lanes.

Memory: the input is a zero-padded grid of positions, s 32-bit words each; the output a grid of
positions of A elements (A * bits), whole rows per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.layer_ir import Conv2d
from compiler.layout import Im2col, Layout, RowTiling
from compiler.plans.base import Emitter, Plan, align_up, indent
from compiler.plans.segments import Segment, plan_segments
from compiler.program import LayerBinding
from compiler.schedule import Timeline, TimedMove as M
from hw.isa import Encoding

EBITS = {"int8": 8, "ternary": 2, "binary": 1, "int32": 32}
MAX_BODY = 768  # MAC triggers per iteration: longer bodies only grow the program
MIN_LOOP = 3  # segments of one shape that run as a loop rather than each in its own code
WORD_BODY = 48  # MAC triggers per turn of a loop over input words (compact code only)


class WindowPlan(Plan):
    """Shared by the dot and element-wise plans. A subclass's __init__ prepares its weight rows
    (`weight_rows`, and per chunk of lanes `entries`: (key, row index)), then calls `setup`;
    it gives each trigger's activation offset (`x_offset`) and accumulator base (`acc_base`)."""

    conv: Conv2d
    im2col: Im2col | None = None
    lead = 0  # bytes from its scratch area to its input grid (`lay_out_input`)
    weight_rows: list
    entries: list[list]

    def setup(self, conv: Conv2d, s: int, in_bits: int, A: int, n: int, pass_lanes: int,
              mac_bits: int, vg: int, chunk_lanes: int, ops: tuple[str, str]) -> None:
        """s: words per input position; in_bits: element bits of the input layout; A: lanes
        per output position; n: positions per MAC trigger; pass_lanes: lanes of one pass (A,
        or W when A > W); vg: the window geometry; chunk_lanes: lanes of one chunk; ops: the
        (accumulate, start) opcodes."""
        self.conv, self.s, self.in_bits, self.A, self.n = conv, s, in_bits, A, n
        self.mac_bits, self.vg, self.pass_lanes = mac_bits, vg, pass_lanes
        self.chunk_lanes, self.ops, self.chunks = chunk_lanes, ops, len(self.entries)
        self.passes = -(-A // pass_lanes)
        self.per_pass = pass_lanes // chunk_lanes if self.chunks > 1 else 1
        o, oh, ow = conv.out_shape
        self.ebits = EBITS[conv.out.kind]
        G = self.group
        per_block = max(sum(len(e) for e in self.entries[q:q + self.per_pass])
                        for q in range(0, self.chunks, self.per_pass))
        # Positions per iteration: as many as the lanes hold, a multiple of n; with several
        # iterations per row, whole rows of output per iteration.
        cap = max(n, self.w // pass_lanes // n * n)
        if ow <= cap:
            self.p, self.nx = align_up(ow, n), 1
            self.cols_out = align_up(self.p * A, G) // A if A < G else self.p
        else:
            unit = n if A >= G else int(np.lcm(n, G // A))
            self.p = max(unit, cap // unit * unit)
            while self.p > unit and per_block * self.p // n > MAX_BODY:
                self.p -= unit
            self.nx = -(-ow // self.p)
            self.cols_out = self.nx * self.p
        (_, sx), (kh, kw), (dy, dx) = conv.stride, conv.kernel, conv.dilation
        _, pl, _, pr = conv.padding
        self.cols = max(conv.in_shape[2] + pl + pr, (self.nx * self.p - 1) * sx + (kw - 1) * dx + 1)
        self.macs = int(conv.weight.size) * oh * ow
        # Parameter rows: one set when positions repeat the channel pattern within a group,
        # else one per group of G channels, loaded before that group's post-processing.
        sets = [self._param_values(r) for r in range(max(1, A // G))]
        self.param_sets = [self.param_rows(*sets[0])] if len(sets) == 1 else \
            self.uniform_param_rows(sets)
        # Weights: resident, or in segments loaded while the layer computes.
        def act_bytes(t: int) -> int:  # input window and output of t output rows
            return align_up(((t - 1) * conv.stride[0] + (kh - 1) * dy + 1) * self.cols * self.s * 4,
                            self.row) + align_up(t * self.cols_out * A * self.ebits // 8, self.row)
        self.segments = plan_segments(
            self, self.entries,
            [range(p * self.per_pass, min(self.chunks, (p + 1) * self.per_pass))
             for p in range(self.passes)],
            one_window=oh == 1 and self.nx == 1, act_min=act_bytes(1),
            act_full=act_bytes(oh) + getattr(self, "lead", 0))
        if not self.dma_segments:
            self.preload_top = self.mem.top

    def adopt_grid(self, cols: int, pos_bits: int) -> bool:
        """Read a grid `cols` positions wide of `pos_bits` positions (a producer's rows, read
        where they lie): only without padding, whose valid outputs never reach the extra
        columns, and wider positions only where the plan's pitch is free."""
        if cols < self.cols or any(self.conv.padding) or self.im2col is not None \
                or pos_bits % 32 or not (pos_bits // 32 == self.s or
                                         self.pitch_free(pos_bits // 32)):
            return False
        self.cols, self.s = cols, pos_bits // 32
        return True

    def output_grid(self) -> tuple[int, int, int, int]:
        return self.conv.out_shape[1], self.cols_out, self.A * self.ebits, min(self.ebits, 32)

    def lay_out_input(self, cols: int, lead: int) -> bool:
        """Read its input from a grid `cols` positions wide (at least its own) that starts
        `lead` bytes into its scratch area: the layout its producer's output keeps every byte
        of a data row in place in (a copy by rows, `compiler.plans.lanes`); False when it
        cannot."""
        if cols < self.cols or self.im2col is not None or lead % 4:
            return False
        self.cols, self.lead = cols, lead
        return True

    def pitch_free(self, words: int) -> bool:
        """Whether input positions may lie `words` apart instead of `s`."""
        return False

    # --- to be provided by subclasses ---------------------------------------------------------
    def x_offset(self, key, q: int, block: int) -> int:
        """Words from the iteration's first input position to the activations of entry `key`
        of chunk q for block `block` of n positions."""
        raise NotImplementedError

    def acc_base(self, block: int, q: int, p: int) -> int:
        """The accumulator base of chunk q's lanes for a block of n positions in pass p."""
        if self.chunks > 1:
            return block * self.pass_lanes + (q - p * self.per_pass) * self.chunk_lanes
        return block * self.n * self.A  # n positions of A lanes (n * A = the chunk's lanes,
        #                                 unless one position takes more: whole rows)

    def triggers(self, seg: Segment) -> list[tuple[str, int, int, int]]:
        """(opcode, x offset in words from the iteration's first input position, weight row,
        accumulator base) of one iteration of segment `seg`, in order."""
        acc_op, start_op = self.ops
        out = []
        for b in range(self.p // self.n):  # block of n positions
            for q in seg.chunks:
                base = self.acc_base(b, q, seg.lane_pass)
                for i, (key, row) in enumerate(self.entries[q][seg.entries]):
                    op = start_op if i == 0 and seg.start else acc_op
                    out.append((op, self.x_offset(key, q, b), seg.row(row), base))
        return out

    def bias(self) -> np.ndarray:
        return self.conv.bias.astype(np.int64)

    # --- parameters ---------------------------------------------------------------------------
    def _param_values(self, r: int) -> tuple:
        """(bias, mul, shift) of the banks for lane group r of a position (channels r*G ..
        r*G + G - 1; or the pattern of A channels repeated when A < G); None: a bank unused."""
        G, A, o, out = self.group, self.A, self.conv.out_shape[0], self.conv.out
        ch = (np.arange(G) % A if A < G else r * G + np.arange(G))
        valid = ch < o
        ch = np.where(valid, ch, 0)

        def per_lane(values, fill=0):
            return np.where(valid, np.asarray(values, np.int64)[ch], fill)

        # binary: lanes past the channels write -1 (bit 0), as a Layout's padding channels
        # hold, so that whole positions can be copied to a binary consumer
        bias = per_lane(self.bias(), -(1 << 30) if out.kind == "binary" else 0)
        if out.kind == "int8":
            return bias, per_lane(out.requant.multiplier), per_lane(out.requant.shift)
        if out.kind == "ternary":
            return bias, per_lane(out.thresholds), None
        return bias, None, None

    # --- code ---------------------------------------------------------------------------------
    def emit(self, scratch: int, enc: Encoding) -> tuple[list[str], LayerBinding]:
        conv = self.conv
        G, L, A, P = self.group, self.chunk, self.A, self.p
        o, oh, ow = conv.out_shape
        (sy, sx), (kh, _), (dy, _) = conv.stride, conv.kernel, conv.dilation
        c = conv.in_shape[0]
        out = conv.out
        op = {"int8": "rq", "ternary": "ter", "binary": "bin", "int32": "racc"}[out.kind]
        per_out = L if op == "racc" else G  # lanes per output trigger
        # output address units per trigger: rows for rq / racc, bytes for bin / ter
        unit = 1 if op in ("rq", "racc") else per_out * self.ebits // 8
        out_pos_bits = A * self.ebits
        window_units = (self.cols_out if self.nx == 1 else P) * A // per_out * unit

        def in_rows(t: int) -> int:
            return (t - 1) * sy + (kh - 1) * dy + 1

        out_row_bytes = align_up(self.cols_out * out_pos_bits // 8, self.row)
        rows = self.tile_rows(scratch + self.lead, oh, in_rows, self.cols * self.s * 4,
                              out_row_bytes)
        in_l = Layout(scratch + self.lead, (c, in_rows(rows), self.cols), in_rows(rows),
                      self.cols, (0, 0), 32 * self.s, self.in_bits, conv.pad_fill)
        out_addr = align_up(in_l.addr + in_l.size, self.row)
        out_l = Layout(out_addr, (o, rows, ow), rows, self.cols_out, (0, 0), out_pos_bits,
                       min(self.ebits, 32), 0)
        em = Emitter(self, enc)
        rin, rout, rx, ry = em.reg(), em.reg(), em.reg(), em.reg()
        cycles = em.start()
        segs = [seg for ss in self.segments for seg in ss]
        if segs[0].ext is not None:
            cycles += em.dma_load(segs[0].ext, len(segs[0].rows), segs[0].first_row)
        ny, nx = (1, rows) if self.nx == 1 else (rows, self.nx)  # a single loop over the
        #                                                          rows when one iteration each
        geo = _Geometry(op, per_out, unit, window_units, in_l.addr // 4,
                        out_addr // self.row if op in ("rq", "racc") else out_addr, ny, nx,
                        (sy * self.cols if self.nx == 1 else P * sx) * self.s,
                        (sy * self.cols - self.nx * P * sx) * self.s, (rin, rout, rx, ry))
        j = 0
        while j < len(segs):
            n = self._loop_length(segs, j)
            cycles += self._segment_loop(em, geo, segs, j, n) if n else \
                self._segment(em, geo, segs, j)
            j += n or 1
        cycles += em.halt()
        tiles = -(-oh // rows)
        tiling = RowTiling(rows, tiles, rows * sy, in_rows(rows), conv.padding,
                           conv.pad_fill, cycles)
        if self.im2col:  # the executor writes patches: tiles of output rows, nothing to pad
            tiling = RowTiling(rows, tiles, rows, rows, (0, 0, 0, 0), tiling.fill, cycles)
        n_macs = sum(len(self.triggers(seg)) for seg in segs)
        binding = LayerBinding(
            self.layer, 0, cycles * tiles, (in_l,), out_l, self.macs, self.mac_bits,
            blocks=tuple(em.blocks), row_tiling=tiling, im2col=self.im2col,
            tiling={"positions_per_iteration": P, "iterations_per_row": self.nx,
                    "positions_per_trigger": self.n, "lanes_per_position": A,
                    "words_per_input_position": self.s, "passes": self.passes,
                    "weight_segments": len(segs) if self.dma_segments else 0,
                    "macs_per_iteration": n_macs, "row_tiles": tiles, "rows_per_tile": rows,
                    "im2col": self.im2col is not None})
        return indent(em.lines), self.looped(em, binding)

    def _loop_length(self, segs: list[Segment], j: int) -> int:
        """How many segments from j run as one loop (0: segment j on its own): streamed
        segments of one shape, each within one output group and followed by a segment to load
        while it computes, their loads a fixed stride apart, the two buffers in turn. Their
        code is the same but for the weight rows' buffer (wb), the accumulator lanes (ab), the
        output addresses and the parameter set (a base register each)."""
        t = segs[j]
        if not (self.dma_segments and self.chunks > 1 and t.ext is not None
                and self.A % self.group == 0 and len(self.param_sets) > 1
                and self.conv.out.kind != "int32" and j + 1 < len(segs)):
            return 0
        ref = self._relative_triggers(t)
        n = 0
        while j + n + 1 < len(segs):
            s, nxt = segs[j + n], segs[j + n + 1]
            lo, hi, _ = self._lanes(s)
            if not (s.lane_pass == t.lane_pass and len(s.chunks) == len(t.chunks)
                    and s.start and s.write and s.entries == slice(None)
                    and len(s.rows) == len(t.rows) and nxt.ext is not None
                    and len(nxt.rows) == len(t.rows)
                    and nxt.ext - s.ext == len(t.rows) * self.row
                    and nxt.first_row == segs[j + (n + 1) % 2 * self.overlap].first_row
                    and self.partial(s) == self.partial(t)
                    and lo // self.group == (hi - 1) // self.group
                    and self._relative_triggers(s) == ref):
                break
            n += 1
        return n if n >= MIN_LOOP else 0

    def _relative_triggers(self, seg: Segment) -> list:
        lane = self._lanes(seg)[0]
        return [(op, x, row - seg.first_row, acc - lane)
                for op, x, row, acc in self.triggers(seg)]

    def _segment_loop(self, em: Emitter, geo: "_Geometry", segs: list[Segment], j: int,
                      n: int) -> int:
        """Segments j .. j + n - 1 as one loop: each iteration starts the next segment's load
        into the other buffer (or, with one buffer, loads it after), points wb at its own
        buffer and at its parameter set, ab at its lanes, rout at its outputs, and runs the
        position nest (`_loop_length`)."""
        t, cfg = segs[j], self.config
        G, lanes = self.group, self.pass_lanes
        lane0 = self._lanes(t)[0]
        p0 = t.lane_pass * lanes  # the pass's first lane of a position
        rcnt, rext, rbuf, rsum, rab, rtmp = em.regs_for("segment loop", 6)
        pre = Timeline(cfg)
        em.value(pre, n, rcnt)
        em.value(pre, segs[j + 1].ext, rext)
        em.value(pre, t.first_row, rbuf)
        em.value(pre, t.first_row + segs[j + 1].first_row, rsum)
        em.value(pre, lane0, rab)
        pre.barrier()
        cycles = em.block(pre)
        since = len(em.blocks)
        em.lines.append(f"{self.label}_loop{j}:")
        rows, cycles_head = len(t.rows), 0
        if self.overlap:
            head = Timeline(cfg)
            em.alu(head, rsum, "sub", rbuf, rtmp)  # the other buffer
            head.barrier()
            cycles_head = em.block(head) + em.dma_trigger(rext, rows, rtmp)
        setup = Timeline(cfg)
        self._setup(em, setup, t)
        if self.overlap:
            em.alu(setup, rext, "add", rows * self.row, rext)
        # the parameter set of the segment's group: rows first0 + group * stride
        first0 = self.param_sets[0]["bias"][0]
        rout = geo.regs[1]
        for reg, per, stride, start in (  # each a chain of dependent ALU steps
                (rtmp, G, self.param_stride, first0 + p0 // G * self.param_stride),
                (rout, geo.per_out, geo.unit, geo.out_start + p0 // geo.per_out * geo.unit)):
            em.alu(setup, rab, "shr", per.bit_length() - 1, reg)
            setup.barrier()
            em.alu(setup, reg, "mul", stride, reg)
            setup.barrier()
            em.alu(setup, reg, "add", start, reg)
            setup.barrier()
        setup.place([M(0, rtmp, "vmac.wb")])  # its group's parameter set, then its buffer
        setup.barrier()
        em.load_params(setup, {b: [r - first0 for r in rs]
                               for b, rs in self.param_sets[0].items()})
        setup.barrier()
        setup.place([M(0, rbuf, "vmac.wb"), M(0, rab, "vmac.ab")])
        rel = _Relative(t.first_row, lane0, (p0 + lane0) // geo.per_out * geo.unit, True,
                        rbuf, rab)
        code = self._nest(em, geo, setup, t, rel, f"{self.label}_l{j}")
        cycles_head += code
        if self.overlap:
            tail_cycles = em.dma_wait(rows, code)
        else:  # one buffer: the next segment's weights once this one is done
            tail_cycles = em.dma_load(rext, rows, rbuf)
        em.repeat(since, n)
        tail = Timeline(cfg)
        if self.overlap:
            em.alu(tail, rsum, "sub", rbuf, rbuf)
        else:
            em.alu(tail, rext, "add", rows * self.row, rext)
        em.alu(tail, rab, "add", len(t.chunks) * self.chunk_lanes, rab)
        em.loop_control(tail, rcnt, f"{self.label}_loop{j}")
        tail_cycles += em.block(tail, count=n, exits=1)
        done = Timeline(cfg)  # the offsets back to none: later code names rows and lanes
        done.place([M(0, "0", "vmac.wb"), M(0, "0", "vmac.ab")])
        cycles += n * (cycles_head + tail_cycles) + em.block(done)
        return cycles

    def _segment(self, em: Emitter, geo: "_Geometry", segs: list[Segment], j: int) -> int:
        """Segment j's code: the next segment's load started (or, without overlap, made after),
        then its loop nest over the output positions."""
        seg = segs[j]
        nxt = segs[j + 1] if j + 1 < len(segs) and segs[j + 1].ext is not None else None
        cycles = 0
        if nxt is not None and self.overlap:
            cycles += em.dma_trigger(nxt.ext, len(nxt.rows), nxt.first_row)
        pro = Timeline(self.config)
        self._setup(em, pro, seg)
        if len(self.param_sets) == 1:
            em.load_params(pro, self.param_sets[0])
        em.value(pro, geo.out_start, geo.regs[1])
        code = self._nest(em, geo, pro, seg, _Relative(), f"{self.label}_s{j}")
        cycles += code
        if nxt is not None:  # its load ran during this segment's code (or runs now)
            cycles += em.dma_wait(len(nxt.rows), code) if self.overlap else \
                em.dma_load(nxt.ext, len(nxt.rows), nxt.first_row)
        return cycles

    def _setup(self, em: Emitter, pro: Timeline, seg: Segment) -> None:
        """The unit's geometry and output configuration for a segment."""
        out = self.conv.out
        em.value(pro, self.vg, "vmac.vg")
        part = int(self.partial(seg)) << 17
        if out.kind == "int8":
            em.value(pro, out.requant.cfg() | part, "vmac.cfg")
        elif out.kind in ("ternary", "binary"):  # set always: a chained layer before may
            #                                      have left bit 17 set
            em.value(pro, part | int(bool(out.relu)) << 18, "vmac.cfg")

    def _chunk_stride(self, seg: Segment) -> tuple[int, int] | None:
        """(weight rows, window words) per chunk when the segment's chunks run as a loop inside
        each iteration (their code the same but for wb, ab and xb: as many entries each, rows
        in order), and unrolled they would make a long body; else None."""
        q0, qs, sl = seg.chunks.start, seg.chunks, seg.entries
        if len(qs) < 2:
            return None
        e = len(self.entries[q0][sl])
        blocks = self.p // self.n
        if blocks * e < (8 if self.compact else 16) or \
                (not self.compact and blocks * len(qs) * e <= MAX_BODY):
            return None
        for q in qs:
            if [seg.row(r) for _, r in self.entries[q][sl]] != list(
                    range(seg.first_row + (q - q0) * e, seg.first_row + (q - q0 + 1) * e)):
                return None
        # each chunk's triggers are the first's moved on by wb, ab and xb alone (a grouped
        # convolution's chunk reads its groups' words: the window moves on by a chunk's words)
        first = self.triggers(self._one_chunk(seg, q0))
        dx = self.triggers(self._one_chunk(seg, q0 + 1))[0][1] - first[0][1]
        for q in qs[1:]:
            j = q - q0
            moved = [(op, x - j * dx, r - j * e, a - j * self.chunk_lanes)
                     for op, x, r, a in self.triggers(self._one_chunk(seg, q))]
            if moved != first:
                return None
        return e, dx

    @staticmethod
    def _one_chunk(seg: Segment, q: int) -> Segment:
        """Segment `seg` reduced to its chunk q."""
        return Segment(seg.lane_pass, range(q, q + 1), seg.entries, seg.start, seg.write,
                       seg.rows, seg.first_row, seg.ext)

    def _nest(self, em: Emitter, geo: "_Geometry", pro: Timeline, seg: Segment,
              rel: "_Relative", label: str) -> int:
        """The loop nest of one segment over the output positions (prologue `pro` holds what
        comes before: rout must be set); rel: offsets a loop over segments moves."""
        stride = self._chunk_stride(seg)
        if stride is None and len(seg.chunks) == 1 and self.compact \
                and self._word_blocks(seg) is not None:
            stride = 0, 0  # one chunk: the chunk loop runs once, around the loop over words
        if stride is not None:
            return self._nest_chunked(em, geo, pro, seg, rel, label, stride)
        cfg, la = self.config, self.lat["alu"]
        rin, rout, rx, ry = geo.regs
        em.value(pro, geo.in_start, rin)
        em.value(pro, geo.ny, ry)
        pro.barrier()
        body = Timeline(cfg)
        base = None
        for k, (mac, x_off, wrow, acc) in enumerate(self.triggers(seg)):
            at = int(k == 0 and cfg.buses < 4)  # xb, x, base and trigger in one cycle
            chain = [M(at, em.imm(x_off), "vmac.x"),
                     M(at, em.imm(wrow - rel.row), f"vmac.{mac}")]
            if acc != base:
                chain.append(M(at, em.imm(acc - rel.lane), "vmac.base"))
                base = acc
            if k == 0:
                chain.append(M(0, rin, "vmac.xb"))
            body.place(chain)
        last_read = self._outputs(em, body, geo.op, geo.per_out, geo.unit, rout, seg, rel) \
            if seg.write else 0
        em.add(body, rin, geo.in_step)
        if seg.write:
            em.add(body, rout, geo.window_units, min_start=max(0, last_read - la))
        em.loop_control(body, rx, f"{label}_x")

        def row_tail(tl):
            em.add(tl, rin, geo.row_step)

        return em.nest(pro, body, row_tail if geo.ny > 1 else (lambda tl: None), geo.ny,
                       geo.nx, label, rx, ry)

    def _nest_chunked(self, em: Emitter, geo: "_Geometry", pro: Timeline, seg: Segment,
                      rel: "_Relative", label: str, stride: tuple[int, int]) -> int:
        """`_nest` with the segment's chunks as a loop inside each iteration: one chunk's
        triggers, wb, ab and xb moved on by a chunk's rows, lanes and words (`stride`: rows,
        words) each time round."""
        cfg, la = self.config, self.lat["alu"]
        rin, rout, rx, ry = geo.regs
        rq, rw, ra = em.regs_for("chunk loop", 3)
        rc = em.regs_for("chunk window", 1)[0] if stride[1] else rin  # the chunk's xb
        lane0 = self._lanes(seg)[0]
        wb0 = rel.wb if rel.wb is not None else em.imm(seg.first_row)
        ab0 = rel.ab if rel.ab is not None else em.imm(lane0)
        rel = _Relative(seg.first_row, lane0, rel.out if rel.ab is not None else 0, rel.params,
                        wb0, ab0)
        em.value(pro, geo.in_start, rin)
        em.value(pro, geo.ny, ry)
        pro.barrier()
        cycles = em.block(pro)
        head = Timeline(cfg)
        head.place([M(0, str(geo.nx), rx)])
        h_len = em.block(head, f"{label}_y", geo.ny)
        iters, chunks = geo.ny * geo.nx, len(seg.chunks)
        pre = Timeline(cfg)  # each iteration: its chunks from the first
        for move in (M(0, wb0, rw), M(0, ab0, ra), M(0, str(chunks), rq), M(0, rin, "vmac.xb")):
            pre.place([move])
        if stride[1]:
            pre.place([M(0, rin, rc)])
        pre_len = em.block(pre, f"{label}_x", iters)
        one = self._one_chunk(seg, seg.chunks.start)
        words = self._word_blocks(one) if self.compact else None
        loop = Timeline(cfg)
        loop.place([M(0, rw, "vmac.wb"), M(0, ra, "vmac.ab")] +
                   ([M(0, rc, "vmac.xb")] if words or stride[1] else []))
        last = self._place_triggers(em, loop, words[2] if words else self.triggers(one), rel)
        if words is None:
            for reg, step in ((rw, stride[0]), (ra, self.chunk_lanes), (rc, stride[1])):
                em.add(loop, reg, step, min_start=max(0, last - la))  # (rc: 0 when rin)
            em.loop_control(loop, rq, f"{label}_c")
            em.lines.append(f"{label}_c:")
            loop_len = em.block(loop, None, iters * chunks, iters)
        else:
            loop_len = self._word_loop(em, loop, words, (rq, rw, ra, rc), stride,
                                       iters * chunks, iters, rel, label)
        post = Timeline(cfg)  # the outputs read lanes from ab's base; parameters from row 0
        post.place([M(0, "0", "vmac.wb"), M(0, ab0, "vmac.ab")])
        last_read = self._outputs(em, post, geo.op, geo.per_out, geo.unit, rout, seg, rel) \
            if seg.write else 0
        em.add(post, rin, geo.in_step)
        if seg.write:
            em.add(post, rout, geo.window_units, min_start=max(0, last_read - la))
        em.loop_control(post, rx, f"{label}_x")
        post_len = em.block(post, None, iters, geo.ny)
        tail = Timeline(cfg)
        if geo.ny > 1:
            em.add(tail, rin, geo.row_step)
        em.loop_control(tail, ry, f"{label}_y")
        t_len = em.block(tail, None, geo.ny, 1)
        done = Timeline(cfg)  # no offsets left for the code after it
        done.place([M(0, "0", "vmac.ab")])
        cycles += em.block(done)
        return cycles + geo.ny * (h_len + geo.nx * (pre_len + chunks * loop_len + post_len)
                                  + t_len)

    def _place_triggers(self, em: Emitter, tl: Timeline, triggers, rel: "_Relative") -> int:
        """MAC triggers in order from cycle 1 (after the offsets set in cycle 0); returns the
        cycle of the last."""
        base, last = None, 0
        for mac, x_off, wrow, acc in triggers:
            chain = [M(0, em.imm(x_off), "vmac.x"),
                     M(0, em.imm(wrow - rel.row), f"vmac.{mac}")]
            if acc != base:
                chain.append(M(0, em.imm(acc - rel.lane), "vmac.base"))
                base = acc
            last = max(last, tl.place(chain, min_start=1))
        return last

    def _word_blocks(self, seg: Segment) -> tuple[int, int, list] | None:
        """(U, turns, the triggers of the first U input words) when one iteration's triggers are a
        reduction over input words that a loop can run U words at a time: the triggers of
        words jU .. jU + U - 1 are the first U words' with the weight rows (wb) and the window
        (xb) moved on by jU, accumulating. U: the fewest words whose triggers make a body of
        at least WORD_BODY (each turn costs a cycle or two); None when there is no such loop.
        Code then grows with the taps, not with the channels."""
        keys = [k for _ in range(self.p // self.n) for q in seg.chunks
                for k, _ in self.entries[q][seg.entries]]
        trig = self.triggers(seg)
        if len(keys) != len(trig) or not all(isinstance(k, tuple) and len(k) == 3
                                             for k in keys):
            return None
        word = [k[2] for k in keys]
        n_words, acc_op = max(word) + 1, self.ops[0]
        u = 1
        while u * len(trig) < WORD_BODY * n_words:
            u *= 2
        if n_words % u or n_words // u < 2:
            return None
        first = [t for t, w in zip(trig, word) if w < u]
        for j in range(1, n_words // u):
            block = [t for t, w in zip(trig, word) if j * u <= w < (j + 1) * u]
            if block != [(acc_op, x + j * u, r + j * u, a) for _, x, r, a in first]:
                return None
        return u, n_words // u - 1, first

    def _word_loop(self, em: Emitter, head: Timeline, words: tuple[int, int, list], regs,
                   stride: tuple[int, int], count: int, exits: int, rel: "_Relative",
                   label: str) -> int:
        """The rest of one chunk's code after `head` (offsets set, the first U words'
        triggers placed): a loop over the other words (wb and xb moved on by U each turn),
        then the chunk loop's control. Returns the cycles of one chunk."""
        cfg, la = self.config, self.lat["alu"]
        rq, rw, ra, rc = regs  # rc: the chunk's window (xb)
        u, turns, first = words
        rj, rwb, rxb = em.regs_for("word loop", 3)
        em.alu(head, rw, "add", u, rwb)
        em.alu(head, rc, "add", u, rxb)
        em.value(head, turns, rj)
        em.lines.append(f"{label}_c:")
        head_len = em.block(head, None, count)
        loop = Timeline(cfg)
        loop.place([M(0, rwb, "vmac.wb"), M(0, rxb, "vmac.xb")])
        last = self._place_triggers(em, loop, [(self.ops[0], *t[1:]) for t in first], rel)
        em.add(loop, rwb, u, min_start=max(0, last - la))
        em.add(loop, rxb, u, min_start=max(0, last - la))
        em.loop_control(loop, rj, f"{label}_w")
        em.lines.append(f"{label}_w:")
        loop_len = em.block(loop, None, count * turns, count)
        tail = Timeline(cfg)
        em.add(tail, rw, stride[0])
        em.add(tail, ra, self.chunk_lanes)
        if stride[1]:
            em.add(tail, rc, stride[1])
        em.loop_control(tail, rq, f"{label}_c")
        return head_len + turns * loop_len + em.block(tail, None, count, exits)

    def _lanes(self, seg: Segment) -> tuple[int, int, int]:
        """(first, end) of the segment's lanes within its pass's, and the pass's lanes used."""
        p = seg.lane_pass
        used = min(self.pass_lanes, self.A - p * self.pass_lanes)  # the last pass may hold fewer
        if self.chunks == 1:
            return 0, used, used
        q0 = p * self.per_pass
        return ((seg.chunks.start - q0) * self.chunk_lanes,
                min(used, (seg.chunks.stop - q0) * self.chunk_lanes), used)

    def partial(self, seg: Segment) -> bool:
        """Its chunks cover output groups only in part (their outputs go chunk by chunk)."""
        if self.conv.out.kind == "int32":
            return False
        lo, hi, used = self._lanes(seg)
        return lo % self.group != 0 or (hi % self.group != 0 and hi != used)

    def _outputs(self, em: Emitter, body: Timeline, op: str, per_out: int, unit: int,
                 rout: str, seg: Segment, rel: "_Relative") -> int:
        """Post-processing of the iteration's positions for the lanes of segment `seg`, group
        by group (with several parameter sets, each set loaded before its groups). Returns the
        last cycle that reads rout."""
        la, A, G, lanes, p = self.lat["alu"], self.A, self.group, self.pass_lanes, seg.lane_pass
        lo, hi, used = self._lanes(seg)
        # a segment of chunks that splits output groups writes chunk by chunk (cfg bit 17)
        step = self.chunk_lanes if self.partial(seg) else per_out
        groups = []  # (parameter set, accumulator lane, output offset)
        for g in range(-(-((self.p - 1) * lanes + used) // step)):
            pos, within = divmod(g * step, lanes)
            if not lo <= within < hi:
                continue
            full = p * lanes + within  # lane of the whole output position
            groups.append((full // G if len(self.param_sets) > 1 else 0, g * step,
                           (pos * A + full) // per_out * unit))
        last, loaded = 0, None
        for r, acc, offset in sorted(groups, key=lambda t: t[0]):
            if len(self.param_sets) > 1 and r != loaded and not rel.params:
                em.load_params(body, self.param_sets[r])
                loaded = r
            acc, offset = acc - rel.lane, offset - rel.out
            if offset == 0:
                chain = [M(0, em.imm(acc), "vmac.base"), M(0, rout, f"vmac.{op}")]
            else:
                chain = [M(0, rout, "alu.in1"), M(0, em.imm(offset), "alu.add"),
                         M(la, em.imm(acc), "vmac.base"), M(la, "alu.res", f"vmac.{op}")]
            last = max(last, body.place(chain))
        return last


@dataclass(frozen=True)
class _Geometry:
    """What every segment's loop nest shares: the output operation and its address units, the
    input and output buffers' starts, the loop counts and strides, the registers."""

    op: str
    per_out: int
    unit: int
    window_units: int
    in_start: int
    out_start: int
    ny: int
    nx: int
    in_step: int
    row_step: int
    regs: tuple[str, str, str, str]  # rin, rout, rx, ry


@dataclass(frozen=True)
class _Relative:
    """Offsets the code of a loop over segments leaves to registers: weight rows from wb
    (`row`), accumulator lanes from ab (`lane`), output addresses from rout's start (`out`),
    and the parameters loaded by the loop, not the nest (`params`)."""

    row: int = 0
    lane: int = 0
    out: int = 0
    params: bool = False
    wb: str | None = None  # the register holding the weight rows' base (a segment loop's)
    ab: str | None = None  # ... the lanes' base
