// Vector unit on one W-bit datapath: a mixed-precision MAC in three forms and post-processing of
// its W int32 accumulators (semantics: hw/golden.py; reference: hw/ISA.md).
//
// The trigger value names the data-memory row of packed weights (int8 bytes, ternary 2-bit codes
// with bit 0 = nonzero and bit 1 = negative, or bits with 1 = +1 and 0 = -1).
//   broadcast (mac, tmac, bmac): the low byte of x times every lane's weight (W/bits lanes).
//   dot (dmac, dtmac, dbmac): output lane l < L = W/32 adds the dot product of its 32-bit weight
//     slice with one 32-bit word of the activation window.
//   element-wise (emac, etmac, ebmac): lane l < W/bits multiplies its weight by one element of
//     the window.
// The activation window is rows R and R + 1 of the data memory, R the row of word address
// xb + x, rotated to start at word (xb + x) mod L (mod 2L). The element-wise form's lane l reads
// element l of it; the dot form's lanes form groups of k = 2^vg[11:8] and group j reads word
// j * 2^(vg[7:0] - 1) of it (vg[7:0] = 0: word 0). Shifts by powers of two, not a crossbar.
// *0 opcodes start a new sum. A form's lanes are acc[B + l], B = base rounded down to a multiple
// of its lane count, so every accumulator is written from a fixed set of lanes.
//
// Post-processing works on G = W/8 lanes from base (rounded down to a multiple of G), with
// per-lane parameter banks bias, mul and shift: sbias / smul / sshift set one entry from prm;
// lbias / lmul set W/32 entries (part prm mod 4) from a row of int32 words, lshift every entry
// from a row of bytes.
//   rq:   row[trigger] byte j = clip(requant(acc + bias) + zero point)   (a whole row; with
//         cfg bit 17, rq / bin / ter write only the W/32 lanes of the block base points into)
//   racc: row[trigger] word i = acc + bias of the W/32 lanes from base (rounded down to W/32)
//   bin:  G bits, bit j = (acc + bias >= 0), at byte address trigger (aligned to G/8 bytes)
//   ter:  G 2-bit codes, +1 above mul[j], -1 below -mul[j] unless cfg bit 18 (aligned to
//         G/4 bytes)
//   aset / radd / amax: acc = x / acc + x * prm / max(acc, x), x = signed byte j of row[trigger]
module tta_vmac #(
    parameter int LAT = 1,
    parameter int W = 64,
    parameter int ROW_AW = 8
) (
    input  logic              clk,
    input  logic              rst,
    input  logic              en,
    input  logic              x_we,
    input  logic [31:0]       x_d,
    input  logic              xb_we,
    input  logic [31:0]       xb_d,
    input  logic              base_we,
    input  logic [31:0]       base_d,
    input  logic              prm_we,
    input  logic [31:0]       prm_d,
    input  logic              cfg_we,
    input  logic [31:0]       cfg_d,
    input  logic              vg_we,
    input  logic [31:0]       vg_d,
    input  logic              trig,
    input  logic [31:0]       trig_d,
    input  logic [OPB_VMAC-1:0] op,
    output logic [31:0]       res,
    output logic [ROW_AW-1:0] mem_row,  // row read this cycle
    input  logic [W-1:0]      mem_rdata,
    output logic [ROW_AW-1:0] win_row,  // the window's first row (the second is the next)
    input  logic [2*W-1:0]    win_rdata,  // {row win_row + 1, row win_row}
    output logic              mem_we,  // row written at the end of this cycle
    output logic [ROW_AW-1:0] mem_wrow,
    output logic [W-1:0]      mem_wdata,
    output logic [W-1:0]      mem_wmask,
    output logic              mem_read,  // event counts of this cycle
    output logic              win_read,
    output logic [31:0]       write_bits,
    output logic              mac8,  // a MAC trigger per precision (any form)
    output logic              mac2,
    output logic              mac1,
    output logic              group  // a post-processing operation on a lane group
`ifdef TTA_FAULT_PORT
    ,  // fault-injection builds only: stuck-at bits of one lane's accumulator register
    input  logic [31:0]       fault_lane,
    input  logic [31:0]       fault_and,  // bits stuck at 0 are 0 here
    input  logic [31:0]       fault_or   // bits stuck at 1 are 1 here
`endif
);
  `include "tta_ops.svh"
  // Every read of an accumulator register goes through ACC: in fault-injection builds the
  // stuck-at bits of lane fault_lane are forced on each read (so on each accumulation too).
`ifdef TTA_FAULT_PORT
`define ACC(i) ((32'(i) == fault_lane) ? ((acc[i] & fault_and) | fault_or) : acc[i])
`else
`define ACC(i) acc[i]
`endif
  localparam int LB = $clog2(W);
  localparam int G = W / 8;
  localparam int GB = $clog2(G);
  localparam int L = W / 32;
  localparam int LW = $clog2(L);
  localparam int WOB = LW + 1;  // bits of a word offset in the two-row window

  logic [31:0] x, xv, xb, xbv, base, basev, prm, prmv, cfg, cfgv, vg, vgv, waddr;
  logic [31:0] acc[W];
  logic [31:0] bias[G], mul[G];
  logic [5:0] shift[G];
  logic start, rows_in, bc8, bc2, bc1, dot8, dot2, dot1, ew8, ew2, ew1;
  logic [3:0] lk;
  logic [7:0] shv;
  logic [LW-1:0] woff;
  logic [2*W-1:0] rot;  // the window from word woff on
  logic [31:0] gword[L];  // the dot form's word of each lane group (of one lane)

  always_comb begin
    xv = x_we ? x_d : x;  // operands moved with the trigger are used at once
    xbv = xb_we ? xb_d : xb;
    basev = base_we ? base_d : base;
    prmv = prm_we ? prm_d : prm;
    cfgv = cfg_we ? cfg_d : cfg;
    vgv = vg_we ? vg_d : vg;
    lk = vgv[11:8];
    shv = vgv[7:0];
    waddr = xbv + xv;
    woff = waddr[LW-1:0];
    bc8 = trig && (op == OP_VMAC_MAC || op == OP_VMAC_MAC0);
    bc2 = trig && (op == OP_VMAC_TMAC || op == OP_VMAC_TMAC0);
    bc1 = trig && (op == OP_VMAC_BMAC || op == OP_VMAC_BMAC0);
    dot8 = trig && (op == OP_VMAC_DMAC || op == OP_VMAC_DMAC0);
    dot2 = trig && (op == OP_VMAC_DTMAC || op == OP_VMAC_DTMAC0);
    dot1 = trig && (op == OP_VMAC_DBMAC || op == OP_VMAC_DBMAC0);
    ew8 = trig && (op == OP_VMAC_EMAC || op == OP_VMAC_EMAC0);
    ew2 = trig && (op == OP_VMAC_ETMAC || op == OP_VMAC_ETMAC0);
    ew1 = trig && (op == OP_VMAC_EBMAC || op == OP_VMAC_EBMAC0);
    {mac8, mac2, mac1} = {bc8 || dot8 || ew8, bc2 || dot2 || ew2, bc1 || dot1 || ew1};
    start = op == OP_VMAC_MAC0 || op == OP_VMAC_TMAC0 || op == OP_VMAC_BMAC0
        || op == OP_VMAC_DMAC0 || op == OP_VMAC_DTMAC0 || op == OP_VMAC_DBMAC0
        || op == OP_VMAC_EMAC0 || op == OP_VMAC_ETMAC0 || op == OP_VMAC_EBMAC0;
    rows_in = trig && (op == OP_VMAC_ASET || op == OP_VMAC_RADD || op == OP_VMAC_AMAX);
    group = rows_in || (trig && (op == OP_VMAC_RQ || op == OP_VMAC_RACC || op == OP_VMAC_BIN
        || op == OP_VMAC_TER));
    mem_read = mac8 || mac2 || mac1 || rows_in
        || (trig && (op == OP_VMAC_LBIAS || op == OP_VMAC_LMUL || op == OP_VMAC_LSHIFT));
    win_read = dot8 || dot2 || dot1 || ew8 || ew2 || ew1;
    mem_row = trig_d[ROW_AW-1:0];
    win_row = waddr[LW+ROW_AW-1:LW];
    gsel = basev[LB-1:GB];
    lsel = basev[LB-1:LW];
    lsub = basev[GB-1:LW];
  end

  // The window's words as the MAC forms read them (apart from the block above: the window
  // is read at the row it names).
  always_comb begin
    rot = '0;
    for (int g = 0; g < L; g++) gword[g] = '0;
    if (win_read) begin  // computed only when a window is read (cheap to simulate)
      rot = (2 * W)'({win_rdata, win_rdata} >> {woff, 5'b00000});
      for (int g = 0; g < L; g++) begin  // group g from word (g << (shv - 1)) mod 2L
        gword[g] = rot[31:0];
        for (int h = 1; h <= WOB; h++)
          if (shv == 8'(h)) gword[g] = rot[32 * ((g << (h - 1)) % (2 * L))+:32];
      end
    end
  end

  // The written row: computed only when a writing operation is triggered (cheap to simulate).
  logic signed [31:0] v, t, y, lo, hi, thr;
  logic [31:0] rnd;
  logic signed [63:0] p;
  // Accumulator blocks are addressed by their index (the base's high bits), so every
  // accumulator has a constant index in each access: area linear in W, not W x lanes.
  logic [LB-GB-1:0] gsel;  // block of G post-processing / element-wise lanes
  logic [LB-LW-1:0] lsel;  // block of L dot-product lanes
  logic [GB-LW-1:0] lsub;  // that block's place among the G parameter entries
  logic keep;
  always_comb begin
    {v, t, y, thr, p, rnd} = '0;
    keep = 1'b1;
    lo = 32'($signed(cfgv[7:0]));
    hi = 32'($signed(cfgv[15:8]));
    mem_we = 1'b0;
    mem_wrow = trig_d[ROW_AW-1:0];
    mem_wdata = '0;
    mem_wmask = '0;
    write_bits = '0;
    if (trig && op == OP_VMAC_RACC) begin
      mem_we = 1'b1;
      for (int i = 0; i < L; i++) begin
        for (int b = 0; b < W / L; b++) if (lsel == (LB - LW)'(b)) v = `ACC(b * L + i);
        mem_wdata[32*i+:32] = v + bias[{lsub, LW'(i)}];
      end
      mem_wmask = '1;
      write_bits = 32'(W);
    end
    if (trig && (op == OP_VMAC_RQ || op == OP_VMAC_BIN || op == OP_VMAC_TER)) begin
      mem_we = 1'b1;
      if (op != OP_VMAC_RQ) mem_wrow = trig_d[GB+ROW_AW-1:GB];
      for (int j = 0; j < G; j++) begin
        // cfg bit 17: only the W/32 lanes of the block base points into
        keep = !cfgv[17] || (GB - LW)'(j >> LW) == basev[GB-1:LW];
        for (int b = 0; b < W / G; b++) if (gsel == (LB - GB)'(b)) v = `ACC(b * G + j);
        v = v + bias[j];
        // shift is 6-bit signed: >= 0 a rounding right shift after the high multiply, < 0 a
        // left shift of the 64-bit product before it (real scales >= 0.5).
        p = 64'(v) * 64'($signed(mul[j]));
        if (shift[j][5]) p = p << (6'd0 - shift[j]);
        p = p + 64'sh80000000;
        t = p[63:32];
        rnd = shift[j][5] ? 32'd0 : (32'd1 << shift[j][4:0]) >> 1;  // 2^30 for a shift of 31
        y = cfgv[16] ? v : shift[j][5] ? t : (t + $signed(rnd)) >>> shift[j][4:0];
        y = y + 32'($signed(cfgv[31:24]));
        thr = $signed(mul[j]);
        if (op == OP_VMAC_RQ) begin
          y = y < lo ? lo : y;  // clip = min(max(y, lo), hi): hi wins when lo > hi
          mem_wdata[8*j+:8] = y > hi ? hi[7:0] : y[7:0];
          mem_wmask[8*j+:8] = keep ? 8'hFF : 8'h00;
        end else if (op == OP_VMAC_BIN) begin  // slot of G bits chosen by the byte address
          mem_wdata[32'(trig_d[GB-1:GB-3])*G+j] = !v[31];
          mem_wmask[32'(trig_d[GB-1:GB-3])*G+j] = keep;
        end else begin  // ter: slot of 2G bits
          // cfg bit 18: no -1 codes (a ReLU before the ternary output)
          mem_wdata[32'(trig_d[GB-1:GB-2])*2*G+2*j+:2] =
              v > thr ? 2'b01 : (v < -thr && !cfgv[18]) ? 2'b11 : 2'b00;
          mem_wmask[32'(trig_d[GB-1:GB-2])*2*G+2*j+:2] = {keep, keep};
        end
      end
      write_bits = op == OP_VMAC_RQ ? 32'(W) : op == OP_VMAC_BIN ? 32'(G) : 32'(2 * G);
    end
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      {x, xb, base, prm, cfg, vg} <= '0;
      for (int l = 0; l < W; l++) acc[l] <= '0;
      for (int j = 0; j < G; j++) {bias[j], mul[j], shift[j]} <= '0;
    end else if (en) begin
      if (x_we) x <= x_d;
      if (xb_we) xb <= xb_d;
      if (base_we) base <= base_d;
      if (prm_we) prm <= prm_d;
      if (cfg_we) cfg <= cfg_d;
      if (vg_we) vg <= vg_d;
      // Lane terms are formed only on a MAC (cheaper to simulate than a combinational array).
      if (bc8)
        for (int l = 0; l < W / 8; l++)
          acc[l] <= (start ? 32'd0 : `ACC(l))
              + 32'(16'($signed(xv[7:0])) * 16'($signed(mem_rdata[8*l+:8])));
      if (bc2)
        for (int l = 0; l < W / 2; l++)
          acc[l] <= (start ? 32'd0 : `ACC(l)) + (!mem_rdata[2*l] ? 32'd0 :
              mem_rdata[2*l+1] ? -(32'($signed(xv[7:0]))) : 32'($signed(xv[7:0])));
      if (bc1)
        for (int l = 0; l < W; l++)
          acc[l] <= (start ? 32'd0 : `ACC(l))
              + (mem_rdata[l] ? 32'($signed(xv[7:0])) : -(32'($signed(xv[7:0]))));
      if (dot8 || dot2 || dot1)
        for (int l = 0; l < L; l++) begin
          logic [31:0] wl, al;
          logic signed [31:0] sum, a;
          wl = mem_rdata[32*l+:32];
          al = gword[0];  // lane l is in group l >> lk
          for (int b = 1; b <= LW; b++) if (lk == 4'(b)) al = gword[l >> b];
          if (lk == 4'd0) al = gword[l];
          sum = '0;
          if (dot8)
            for (int k = 0; k < 4; k++)
              sum += 32'(16'($signed(al[8*k+:8])) * 16'($signed(wl[8*k+:8])));
          else if (dot2)
            for (int k = 0; k < 16; k++)  // code: bit 0 = nonzero, bit 1 = negative
              sum += !(al[2*k] && wl[2*k]) ? 32'd0 : al[2*k+1] ^ wl[2*k+1] ? -32'sd1 : 32'sd1;
          else
            sum = 32'($countones(~(al ^ wl))) * 2 - 32;
          a = '0;  // read the lane's accumulator, add once, write it back
          for (int b = 0; b < W / L; b++) if (lsel == (LB - LW)'(b)) a = `ACC(b * L + l);
          a = (start ? 32'd0 : a) + sum;
          for (int b = 0; b < W / L; b++) if (lsel == (LB - LW)'(b)) acc[b * L + l] <= a;
        end
      if (ew8)
        for (int l = 0; l < G; l++) begin
          logic signed [31:0] a;
          a = '0;
          for (int b = 0; b < W / G; b++) if (gsel == (LB - GB)'(b)) a = `ACC(b * G + l);
          a = (start ? 32'd0 : a)
              + 32'(16'($signed(rot[8*l+:8])) * 16'($signed(mem_rdata[8*l+:8])));
          for (int b = 0; b < W / G; b++) if (gsel == (LB - GB)'(b)) acc[b * G + l] <= a;
        end
      if (ew2)
        for (int l = 0; l < W / 2; l++) begin
          logic [1:0] a, w;
          logic signed [31:0] s2;
          a = rot[2*l+:2];
          w = mem_rdata[2*l+:2];
          // the lane's accumulator: in the half of acc that base points into
          s2 = basev[LB-1] ? `ACC(W / 2 + l) : `ACC(l);
          s2 = (start ? 32'd0 : s2) + (!(a[0] && w[0]) ? 32'd0 : a[1] ^ w[1] ? -32'sd1 : 32'sd1);
          if (basev[LB-1]) acc[W / 2 + l] <= s2;
          else acc[l] <= s2;
        end
      if (ew1)
        for (int l = 0; l < W; l++) begin
          acc[l] <= (start ? 32'd0 : `ACC(l)) + (rot[l] == mem_rdata[l] ? 32'sd1 : -32'sd1);
        end
      if (rows_in)
        for (int j = 0; j < G; j++) begin
          logic signed [31:0] a, xj;
          xj = 32'($signed(mem_rdata[8*j+:8]));
          a = '0;
          for (int b = 0; b < W / G; b++) if (gsel == (LB - GB)'(b)) a = $signed(`ACC(b * G + j));
          a = op == OP_VMAC_ASET ? xj : op == OP_VMAC_RADD ? a + xj * $signed(prmv)
              : (xj > a ? xj : a);
          for (int b = 0; b < W / G; b++) if (gsel == (LB - GB)'(b)) acc[b * G + j] <= a;
        end
      if (trig && op == OP_VMAC_SBIAS) bias[trig_d[GB-1:0]] <= prmv;
      if (trig && op == OP_VMAC_SMUL) mul[trig_d[GB-1:0]] <= prmv;
      if (trig && op == OP_VMAC_SSHIFT) shift[trig_d[GB-1:0]] <= prmv[5:0];
      if (trig && op == OP_VMAC_LBIAS)
        for (int i = 0; i < L; i++) bias[{prmv[1:0], LW'(i)}] <= mem_rdata[32*i+:32];
      if (trig && op == OP_VMAC_LMUL)
        for (int i = 0; i < L; i++) mul[{prmv[1:0], LW'(i)}] <= mem_rdata[32*i+:32];
      if (trig && op == OP_VMAC_LSHIFT)
        for (int j = 0; j < G; j++) shift[j] <= mem_rdata[8*j+:6];
    end
  end

  wire get = trig && op == OP_VMAC_GET;
  tta_pipe #(.LAT(LAT)) u_pipe (.clk, .rst, .en, .in_valid(get), .in_data(`ACC(trig_d[LB-1:0])), .res);
endmodule
`undef ACC
