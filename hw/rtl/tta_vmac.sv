// Vector unit on one W-bit datapath: a mixed-precision MAC and post-processing of its
// accumulators (semantics: hw/golden.py; reference: hw/ISA.md).
//
// MAC: the operand `x` (low byte, signed) is broadcast to every lane; the trigger value names the
// data-memory row holding the packed weights:
//   int8:    W/8 lanes, a signed byte per lane            (mac, mac0)
//   ternary: W/2 lanes, a 2-bit code per lane: bit 0 = nonzero, bit 1 = negative  (tmac, tmac0)
//   binary:  W lanes, a bit per lane: 1 = +1, 0 = -1      (bmac, bmac0)
// mac*: acc[l] += x * w[l]; mac*0: acc[l] = x * w[l]; lanes past the precision's count keep
// their value. get: res = acc[trigger mod W]. Accumulators are int32 and wrap.
// Dot forms (dmac, dtmac, dbmac and their *0): x holds 32 bits of packed activations in the
// same format as the weights (4 bytes, 16 codes, 32 bits); output lane l = 0 .. W/32 - 1 adds
// the dot product of x with bits [32l, 32l + 32) of the row to acc[base + l] (mod W).
//
// Post-processing works on the group of G = W/8 lanes base .. base + G - 1 (mod W), with
// per-lane parameter banks bias, mul and shift (set by sbias / smul / sshift from `prm`;
// brep copies entry j & mask to every entry j, mask = trigger value, for repeating patterns):
//   rq:   row[trigger] byte j = clip(requant(acc + bias) + zero point)   (a whole row)
//   bin:  G bits, bit j = (acc + bias >= 0), at byte address trigger (aligned to G/8 bytes)
//   ter:  G 2-bit codes, +1 above mul[j], -1 below -mul[j] (aligned to G/4 bytes)
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
    input  logic              base_we,
    input  logic [31:0]       base_d,
    input  logic              prm_we,
    input  logic [31:0]       prm_d,
    input  logic              cfg_we,
    input  logic [31:0]       cfg_d,
    input  logic              trig,
    input  logic [31:0]       trig_d,
    input  logic [OPB_VMAC-1:0] op,
    output logic [31:0]       res,
    output logic [ROW_AW-1:0] mem_row,  // row read this cycle
    input  logic [W-1:0]      mem_rdata,
    output logic              mem_we,  // row written at the end of this cycle
    output logic [ROW_AW-1:0] mem_wrow,
    output logic [W-1:0]      mem_wdata,
    output logic [W-1:0]      mem_wmask,
    output logic              mem_read,  // event counts of this cycle
    output logic [31:0]       write_bits,
    output logic              mac8,  // a MAC trigger per precision (broadcast or dot form)
    output logic              mac2,
    output logic              mac1,
    output logic              group  // a post-processing operation on G lanes
);
  `include "tta_ops.svh"
  localparam int LB = $clog2(W);
  localparam int G = W / 8;
  localparam int GB = $clog2(G);

  logic [31:0] x, xv, base, basev, prm, prmv, cfg, cfgv;
  logic [31:0] acc[W];
  logic [31:0] bias[G], mul[G];
  logic [5:0] shift[G];
  logic start, rows_in, bc8, bc2, bc1, dot8, dot2, dot1;

  always_comb begin
    xv = x_we ? x_d : x;  // operands moved with the trigger are used at once
    basev = base_we ? base_d : base;
    prmv = prm_we ? prm_d : prm;
    cfgv = cfg_we ? cfg_d : cfg;
    bc8 = trig && (op == OP_VMAC_MAC || op == OP_VMAC_MAC0);
    bc2 = trig && (op == OP_VMAC_TMAC || op == OP_VMAC_TMAC0);
    bc1 = trig && (op == OP_VMAC_BMAC || op == OP_VMAC_BMAC0);
    dot8 = trig && (op == OP_VMAC_DMAC || op == OP_VMAC_DMAC0);
    dot2 = trig && (op == OP_VMAC_DTMAC || op == OP_VMAC_DTMAC0);
    dot1 = trig && (op == OP_VMAC_DBMAC || op == OP_VMAC_DBMAC0);
    {mac8, mac2, mac1} = {bc8 || dot8, bc2 || dot2, bc1 || dot1};
    start = op == OP_VMAC_MAC0 || op == OP_VMAC_TMAC0 || op == OP_VMAC_BMAC0
        || op == OP_VMAC_DMAC0 || op == OP_VMAC_DTMAC0 || op == OP_VMAC_DBMAC0;
    rows_in = trig && (op == OP_VMAC_ASET || op == OP_VMAC_RADD || op == OP_VMAC_AMAX);
    group = rows_in || (trig && (op == OP_VMAC_RQ || op == OP_VMAC_BIN || op == OP_VMAC_TER));
    mem_read = mac8 || mac2 || mac1 || rows_in;
    mem_row = trig_d[ROW_AW-1:0];
  end

  // The written row: computed only when a writing operation is triggered (cheap to simulate).
  logic signed [31:0] v, t, y, lo, hi, thr;
  logic [31:0] rnd;
  logic signed [63:0] p;
  always_comb begin
    {v, t, y, thr, p, rnd} = '0;
    lo = 32'($signed(cfgv[7:0]));
    hi = 32'($signed(cfgv[15:8]));
    mem_we = 1'b0;
    mem_wrow = trig_d[ROW_AW-1:0];
    mem_wdata = '0;
    mem_wmask = '0;
    write_bits = '0;
    if (trig && (op == OP_VMAC_RQ || op == OP_VMAC_BIN || op == OP_VMAC_TER)) begin
      mem_we = 1'b1;
      if (op != OP_VMAC_RQ) mem_wrow = trig_d[GB+ROW_AW-1:GB];
      for (int j = 0; j < G; j++) begin
        v = acc[LB'(basev) + LB'(j)] + bias[j];
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
          mem_wmask[8*j+:8] = 8'hFF;
        end else if (op == OP_VMAC_BIN) begin  // slot of G bits chosen by the byte address
          mem_wdata[32'(trig_d[GB-1:GB-3])*G+j] = !v[31];
          mem_wmask[32'(trig_d[GB-1:GB-3])*G+j] = 1'b1;
        end else begin  // ter: slot of 2G bits
          mem_wdata[32'(trig_d[GB-1:GB-2])*2*G+2*j+:2] = v > thr ? 2'b01 : v < -thr ? 2'b11 : 2'b00;
          mem_wmask[32'(trig_d[GB-1:GB-2])*2*G+2*j+:2] = 2'b11;
        end
      end
      write_bits = op == OP_VMAC_RQ ? 32'(W) : op == OP_VMAC_BIN ? 32'(G) : 32'(2 * G);
    end
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      {x, base, prm, cfg} <= '0;
      for (int l = 0; l < W; l++) acc[l] <= '0;
      for (int j = 0; j < G; j++) {bias[j], mul[j], shift[j]} <= '0;
    end else if (en) begin
      if (x_we) x <= x_d;
      if (base_we) base <= base_d;
      if (prm_we) prm <= prm_d;
      if (cfg_we) cfg <= cfg_d;
      // Lane terms are formed only on a MAC (cheaper to simulate than a combinational array).
      if (bc8)
        for (int l = 0; l < W / 8; l++)
          acc[l] <= (start ? 32'd0 : acc[l])
              + 32'(16'($signed(xv[7:0])) * 16'($signed(mem_rdata[8*l+:8])));
      if (bc2)
        for (int l = 0; l < W / 2; l++)
          acc[l] <= (start ? 32'd0 : acc[l]) + (!mem_rdata[2*l] ? 32'd0 :
              mem_rdata[2*l+1] ? -(32'($signed(xv[7:0]))) : 32'($signed(xv[7:0])));
      if (bc1)
        for (int l = 0; l < W; l++)
          acc[l] <= (start ? 32'd0 : acc[l])
              + (mem_rdata[l] ? 32'($signed(xv[7:0])) : -(32'($signed(xv[7:0]))));
      if (dot8 || dot2 || dot1)
        for (int l = 0; l < W / 32; l++) begin
          logic [31:0] wl;
          logic signed [31:0] sum;
          wl = mem_rdata[32*l+:32];
          sum = '0;
          if (dot8)
            for (int k = 0; k < 4; k++)
              sum += 32'(16'($signed(xv[8*k+:8])) * 16'($signed(wl[8*k+:8])));
          else if (dot2)
            for (int k = 0; k < 16; k++)  // code: bit 0 = nonzero, bit 1 = negative
              sum += !(xv[2*k] && wl[2*k]) ? 32'd0 : xv[2*k+1] ^ wl[2*k+1] ? -32'sd1 : 32'sd1;
          else
            sum = 32'($countones(~(xv ^ wl))) * 2 - 32;
          acc[LB'(basev) + LB'(l)] <= (start ? 32'd0 : acc[LB'(basev) + LB'(l)]) + sum;
        end
      if (rows_in)
        for (int j = 0; j < G; j++) begin
          logic signed [31:0] a, xj;
          a = $signed(acc[LB'(basev) + LB'(j)]);
          xj = 32'($signed(mem_rdata[8*j+:8]));
          acc[LB'(basev) + LB'(j)] <= op == OP_VMAC_ASET ? xj
              : op == OP_VMAC_RADD ? a + xj * $signed(prmv) : (xj > a ? xj : a);
        end
      if (trig && op == OP_VMAC_SBIAS) bias[trig_d[GB-1:0]] <= prmv;
      if (trig && op == OP_VMAC_SMUL) mul[trig_d[GB-1:0]] <= prmv;
      if (trig && op == OP_VMAC_SSHIFT) shift[trig_d[GB-1:0]] <= prmv[5:0];
      if (trig && op == OP_VMAC_BREP)  // replicate the banks with period mask + 1
        for (int j = 0; j < G; j++) begin
          bias[j] <= bias[GB'(j) & trig_d[GB-1:0]];
          mul[j] <= mul[GB'(j) & trig_d[GB-1:0]];
          shift[j] <= shift[GB'(j) & trig_d[GB-1:0]];
        end
    end
  end

  wire get = trig && op == OP_VMAC_GET;
  tta_pipe #(.LAT(LAT)) u_pipe (.clk, .rst, .en, .in_valid(get), .in_data(acc[trig_d[LB-1:0]]), .res);
endmodule
