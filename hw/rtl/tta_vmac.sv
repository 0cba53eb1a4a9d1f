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
//   rsc0 / rsc: acc = / += requant((byte j + offset) << left) with scalar multiplier prm and
//         shift, offset, left shift and shift from x (TFLite's ADD: each input rescaled)
//   rq:   row[trigger] byte j = clip(requant(acc + bias) + zero point)   (a whole row; with
//         cfg bit 19, requant rounds as TFLite's reference kernels do;
//         with cfg bit 17, rq / bin / ter write only the W/32 lanes of the block base points
//         into)
//   racc: row[trigger] word i = acc + bias of the W/32 lanes from base (rounded down to W/32)
//   bin:  G bits, bit j = (acc + bias >= 0), at byte address trigger (aligned to G/8 bytes)
//   ter:  G 2-bit codes, +1 above mul[j], -1 below -mul[j] unless cfg bit 18 (aligned to
//         G/4 bytes)
//   aset / radd / amax: acc = x / acc + x * prm / max(acc, x), x = signed byte j of row[trigger]
//   llut: table entries q G .. q G + G - 1 (q = prm mod 256 / G; all 256 when G >= 256) = the
//         row's bytes; lut: row[trigger] byte j = table[byte j of the row read] for the W/32
//         bytes of the block base points into (the others keep their memory)
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
    input  logic              wb_we,  // added to every row the row port reads (a loop's base)
    input  logic [31:0]       wb_d,
    input  logic              ab_we,  // added to base (the accumulator lanes a trigger names)
    input  logic [31:0]       ab_d,
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
  localparam int LB = $clog2(W);
  localparam int G = W / 8;
  localparam int GB = $clog2(G);
  localparam int L = W / 32;
  localparam int LW = $clog2(L);
  localparam int WOB = LW + 1;  // bits of a word offset in the two-row window
  localparam int NS = G / 4;  // columns of 32 accumulators: four groups in each block

  // The datapath is built from identical instances (W/32 columns of 32 accumulator lanes, G
  // post-processing groups, L dot-product lanes) wired by constant indices: Yosys synthesizes
  // each kind once, so whole syntheses of wide units finish, and the area is linear in W.
  logic [31:0] x, xv, xb, xbv, base, basev, prm, prmv, cfg, cfgv, vg, vgv, wb, wbv, ab, abv,
      waddr;
  logic [31:0] gacc[G];  // accumulator j of the block read out (stuck-at faults applied)
  logic [2:0] rsel;  // that block
  logic [31:0] bias[G], mul[G];
  logic [5:0] shift[G];
  localparam int TN = G < 256 ? G : 256;  // table entries one llut loads
  logic [2047:0] table_bits;  // the lookup table: entry e is bits [8e, 8e + 8)
  logic [7:0] lut_in[L], lut_out[L];
  logic start, rows_in, rsc, bc8, bc2, bc1, dot8, dot2, dot1, ew8, ew2, ew1, post;
  logic [3:0] lk;
  logic [7:0] shv;
  logic [LW-1:0] woff;
  logic [2*W-1:0] rot;  // the window from word woff on
  logic [31:0] gword[L];  // the dot form's word of each lane group (of one lane)
  // Accumulator blocks are addressed by their index (the base's high bits), so every
  // accumulator has a constant index in each access: area linear in W, not W x lanes.
  logic [LB-GB-1:0] gsel;  // block of G post-processing / element-wise lanes
  logic [GB-LW-1:0] lsub;  // that block's place among the G parameter entries

  always_comb begin
    xv = x_we ? x_d : x;  // operands moved with the trigger are used at once
    xbv = xb_we ? xb_d : xb;
    wbv = wb_we ? wb_d : wb;
    abv = ab_we ? ab_d : ab;
    basev = (base_we ? base_d : base) + abv;
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
    rsc = trig && (op == OP_VMAC_RSC0 || op == OP_VMAC_RSC);
    rows_in = trig && (op == OP_VMAC_ASET || op == OP_VMAC_RADD || op == OP_VMAC_AMAX) || rsc;
    post = trig && (op == OP_VMAC_RQ || op == OP_VMAC_BIN || op == OP_VMAC_TER);
    group = rows_in || post || (trig && (op == OP_VMAC_RACC || op == OP_VMAC_LUT));
    mem_read = mac8 || mac2 || mac1 || rows_in
        || (trig && (op == OP_VMAC_LBIAS || op == OP_VMAC_LMUL || op == OP_VMAC_LSHIFT
                     || op == OP_VMAC_LLUT || op == OP_VMAC_LUT));
    win_read = dot8 || dot2 || dot1 || ew8 || ew2 || ew1;
    mem_row = ROW_AW'(trig_d + wbv);
    win_row = waddr[LW+ROW_AW-1:LW];
    gsel = basev[LB-1:GB];
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

  // Dot-product lanes: lane l < L reads the word of its group (l >> lk).
  logic [31:0] dword[L], dsum[L];
  always_comb begin
    for (int l = 0; l < L; l++) begin
      dword[l] = gword[0];
      for (int b = 1; b <= LW; b++) if (lk == 4'(b)) dword[l] = gword[l >> b];
      if (lk == 4'd0) dword[l] = gword[l];
    end
  end
  for (genvar l = 0; l < L; l++) begin : g_dot
    tta_vmac_dot u_dot (.on8(dot8), .on2(dot2), .on1(dot1), .a(dword[l]),
                        .w(mem_rdata[32*l+:32]), .sum(dsum[l]));
  end

  // Post-processing groups j < G: the 8-bit products of the broadcast and element-wise forms,
  // a row's byte j times prm (radd), and requantization of accumulator j of block gsel.
  logic [31:0] gprod[G];
  logic [15:0] gp8[G];
  logic [7:0] gbyte[G];
  logic gbit[G];
  logic [1:0] gcode[G];
  for (genvar j = 0; j < G; j++) begin : g_group
    tta_vmac_group u_group (
        .p8_on(bc8 || ew8), .radd_on(trig && op == OP_VMAC_RADD), .rsc_on(rsc),
        .post_on(post), .a8(bc8 ? xv[7:0] : rot[8*j+:8]), .w8(mem_rdata[8*j+:8]), .prm(prmv),
        .rsc_off(xv[24:16]), .rsc_ls(xv[12:8]), .rsc_sh(xv[5:0]),
        .acc(gacc[j]), .bias(bias[j]), .mul(mul[j]), .shift(shift[j]), .cfg(cfgv),
        .p8(gp8[j]), .prod(gprod[j]), .q8(gbyte[j]), .qbit(gbit[j]), .qcode(gcode[j]));
  end

  // Lookup lanes: the W/32 bytes of block lsub of the row read, each through the table.
  always_comb begin
    for (int i = 0; i < L; i++) begin
      lut_in[i] = '0;
      for (int q = 0; q < G / L; q++)
        if (lsub == (GB - LW)'(q)) lut_in[i] = mem_rdata[8*(q*L+i)+:8];
    end
  end
  for (genvar i = 0; i < L; i++) begin : g_lut
    tta_vmac_lut u_lut (.table_bits, .index(lut_in[i]), .value(lut_out[i]));
  end

  // Which accumulators a trigger writes: each form's lanes are blocks of G (the dot form's a
  // quarter of one), and the block read out is the one base points into (get: the lane's).
  logic [7:0] blk;
  logic t_p8, t_terx, t_ter1, t_binx, t_bin1, t_dot, t_prod, rset, rmax;  // column terms
  always_comb begin
    blk = '0;
    {t_p8, t_terx, t_ter1, t_binx, t_bin1, t_dot, t_prod, rset, rmax} = '0;
    if (bc1 || ew1) begin
      blk = '1;
      {t_binx, t_bin1} = {bc1, ew1};
    end
    if (bc8 || ew8) begin
      t_p8 = 1'b1;
      blk[bc8 ? 3'd0 : gsel] = 1'b1;
    end
    if (bc2) begin
      blk = 8'h0F;
      t_terx = 1'b1;
    end
    if (ew2) begin  // in the half of acc that base points into
      blk = basev[LB-1] ? 8'hF0 : 8'h0F;
      t_ter1 = 1'b1;
    end
    if (dot8 || dot2 || dot1) begin  // the columns' dmask picks the quarter lsub
      blk[gsel] = 1'b1;
      t_dot = 1'b1;
    end
    if (rows_in) begin
      blk[gsel] = 1'b1;
      t_prod = op == OP_VMAC_RADD || rsc;  // acc + x * prm, or the rescaled byte (rsc);
      //                                    aset and amax take the byte x
      {rset, rmax} = {op == OP_VMAC_ASET || op == OP_VMAC_RSC0, op == OP_VMAC_AMAX};
    end
    rsel = (trig && op == OP_VMAC_GET) ? trig_d[LB-1:GB] : gsel;
  end

  // Column c holds lanes b * G + 4c + jj; its operands, by constant indices.
  for (genvar c = 0; c < NS; c++) begin : g_column
    logic [63:0] p8;
    logic [127:0] dot, prod, racc;
    logic [31:0] xj, wcode, rcode, wbit, rbit;
    logic [3:0] dmask;
    for (genvar jj = 0; jj < 4; jj++) begin : g_lane
      localparam int J = 4 * c + jj;  // its group
      assign p8[16*jj+:16] = gp8[J];
      assign dot[32*jj+:32] = dsum[J % L];
      assign prod[32*jj+:32] = gprod[J];
      assign xj[8*jj+:8] = mem_rdata[8*J+:8];
      assign dmask[jj] = lsub == (GB - LW)'(J / L);
      assign gacc[J] = racc[32*jj+:32];
    end
    for (genvar b = 0; b < 8; b++) begin : g_block  // four lanes at once: cheap to simulate
      assign wbit[4*b+:4] = mem_rdata[b*G+4*c+:4];
      assign rbit[4*b+:4] = rot[b*G+4*c+:4];
      if (b < 4) begin : g_code
        assign wcode[8*b+:8] = mem_rdata[2*(b*G+4*c)+:8];
        assign rcode[8*b+:8] = rot[2*(b*G+4*c)+:8];
      end
    end
    tta_vmac_column #(.G(G)) u_column (
        .clk, .rst, .en, .blk, .dmask, .t_p8, .t_terx, .t_ter1, .t_binx, .t_bin1, .t_dot,
        .t_prod, .rset, .rmax, .start, .x8(xv[7:0]), .p8, .dot, .prod, .xj, .wcode, .rcode,
        .wbit, .rbit, .rsel, .racc
`ifdef TTA_FAULT_PORT
        , .first(32'(4 * c)), .fault_lane, .fault_and, .fault_or
`endif
    );
  end

  // The written row: computed only when a writing operation is triggered (cheap to simulate).
  logic signed [31:0] v;
  logic keep;
  always_comb begin
    v = '0;
    keep = 1'b1;
    mem_we = 1'b0;
    mem_wrow = trig_d[ROW_AW-1:0];
    mem_wdata = '0;
    mem_wmask = '0;
    write_bits = '0;
    if (trig && op == OP_VMAC_RACC) begin
      mem_we = 1'b1;
      for (int i = 0; i < L; i++) begin
        for (int q = 0; q < G / L; q++)  // lane i of dot block base / L: group lsub * L + i
          if (lsub == (GB - LW)'(q)) v = gacc[q * L + i] + bias[q * L + i];
        mem_wdata[32*i+:32] = v;
      end
      mem_wmask = '1;
      write_bits = 32'(W);
    end
    if (trig && op == OP_VMAC_LUT) begin
      mem_we = 1'b1;
      for (int i = 0; i < L; i++)
        for (int q = 0; q < G / L; q++)
          if (lsub == (GB - LW)'(q)) begin
            mem_wdata[8*(q*L+i)+:8] = lut_out[i];
            mem_wmask[8*(q*L+i)+:8] = 8'hFF;
          end
      write_bits = 32'(W / 4);
    end
    if (post) begin
      mem_we = 1'b1;
      if (op != OP_VMAC_RQ) mem_wrow = trig_d[GB+ROW_AW-1:GB];
      for (int j = 0; j < G; j++) begin
        // cfg bit 17: only the W/32 lanes of the block base points into
        keep = !cfgv[17] || (GB - LW)'(j >> LW) == basev[GB-1:LW];
        if (op == OP_VMAC_RQ) begin
          mem_wdata[8*j+:8] = gbyte[j];
          mem_wmask[8*j+:8] = keep ? 8'hFF : 8'h00;
        end else if (op == OP_VMAC_BIN) begin  // slot of G bits chosen by the byte address
          for (int s = 0; s < 8; s++)  // slots enumerated: a constant bit index each
            if (trig_d[GB-1:GB-3] == 3'(s)) begin
              mem_wdata[s*G+j] = gbit[j];
              mem_wmask[s*G+j] = keep;
            end
        end else begin  // ter: slot of 2G bits
          for (int s = 0; s < 4; s++)
            if (trig_d[GB-1:GB-2] == 2'(s)) begin
              mem_wdata[s*2*G+2*j+:2] = gcode[j];
              mem_wmask[s*2*G+2*j+:2] = {keep, keep};
            end
        end
      end
      write_bits = op == OP_VMAC_RQ ? 32'(W) : op == OP_VMAC_BIN ? 32'(G) : 32'(2 * G);
    end
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      {x, xb, base, prm, cfg, vg, wb, ab} <= '0;
      table_bits <= '0;
      for (int j = 0; j < G; j++) {bias[j], mul[j], shift[j]} <= '0;
    end else if (en) begin
      if (x_we) x <= x_d;
      if (xb_we) xb <= xb_d;
      if (base_we) base <= base_d;
      if (prm_we) prm <= prm_d;
      if (cfg_we) cfg <= cfg_d;
      if (vg_we) vg <= vg_d;
      if (wb_we) wb <= wb_d;
      if (ab_we) ab <= ab_d;
      if (trig && op == OP_VMAC_SBIAS) bias[trig_d[GB-1:0]] <= prmv;
      if (trig && op == OP_VMAC_SMUL) mul[trig_d[GB-1:0]] <= prmv;
      if (trig && op == OP_VMAC_SSHIFT) shift[trig_d[GB-1:0]] <= prmv[5:0];
      if (trig && op == OP_VMAC_LBIAS)
        for (int i = 0; i < L; i++)
          for (int q = 0; q < G / L; q++)
            if (prmv[1:0] == 2'(q)) bias[q * L + i] <= mem_rdata[32*i+:32];
      if (trig && op == OP_VMAC_LMUL)
        for (int i = 0; i < L; i++)
          for (int q = 0; q < G / L; q++)
            if (prmv[1:0] == 2'(q)) mul[q * L + i] <= mem_rdata[32*i+:32];
      if (trig && op == OP_VMAC_LSHIFT)
        for (int j = 0; j < G; j++) shift[j] <= mem_rdata[8*j+:6];
      if (trig && op == OP_VMAC_LLUT)
        for (int q = 0; q < 256 / TN; q++)
          if (prmv % (256 / TN) == 32'(q)) table_bits[8*TN*q+:8*TN] <= mem_rdata[0+:8*TN];
    end
  end

  wire get = trig && op == OP_VMAC_GET;
  tta_pipe #(.LAT(LAT)) u_pipe (.clk, .rst, .en, .in_valid(get), .in_data(gacc[trig_d[GB-1:0]]),
                                .res);
endmodule
