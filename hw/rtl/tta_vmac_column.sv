// One column of the vector unit's accumulators (tta_vmac.sv): the 32 lanes of four
// post-processing groups j = J .. J + 3 in each of the 8 blocks of G lanes, lane (b, jj) being
// accumulator b * G + J + jj. Every form's lanes are whole blocks or part of one, so a trigger
// names its lanes by a block mask, and the block read out (rq, racc, get) is chosen here: the
// unit is W/32 identical columns wired by constant indices.
// Every read of an accumulator register goes through ACC: in fault-injection builds the
// stuck-at bits of lane fault_lane are forced on each read (so on each accumulation too).
`ifdef TTA_FAULT_PORT
`define ACC(i) ((32'((i) / 4 * G + (i) % 4) + first == fault_lane) \
    ? ((acc_r[i] & fault_and) | fault_or) : acc_r[i])
`else
`define ACC(i) acc_r[i]
`endif
module tta_vmac_column #(
    parameter int G = 8  // lanes of a block (W / 8): places the lanes in fault-injection builds
) (
    input  logic         clk,
    input  logic         rst,
    input  logic         en,
    input  logic [7:0]   blk,  // blocks written this cycle
    input  logic [3:0]   dmask,  // the dot form: this column's lanes in the dot block
    input  logic         t_p8,  // the term: the group's 8-bit product (mac, emac)
    input  logic         t_terx,  // x times the weight code (tmac)
    input  logic         t_ter1,  // window code times weight code (etmac)
    input  logic         t_binx,  // +x / -x by the weight bit (bmac)
    input  logic         t_bin1,  // +1 / -1 where window and weight bits agree (ebmac)
    input  logic         t_dot,  // the dot lane's sum
    input  logic         t_prod,  // the row's byte times prm (radd); else the byte itself
    input  logic         rset,  // acc = term (aset)
    input  logic         rmax,  // acc = max(acc, term) (amax)
    input  logic         start,  // acc = term: a new sum
    input  logic [7:0]   x8,  // the broadcast operand
    input  logic [63:0]  p8,  // per group lane jj
    input  logic [127:0] dot,
    input  logic [127:0] prod,
    input  logic [31:0]  xj,
    input  logic [31:0]  wcode,  // lane (b, jj) of blocks b < 4 (blocks 4-7 read block b - 4's)
    input  logic [31:0]  rcode,
    input  logic [31:0]  wbit,  // lane (b, jj): bit 4b + jj
    input  logic [31:0]  rbit,
    input  logic [2:0]   rsel,  // the block read out
    output logic [127:0] racc  // its four accumulators, as read
`ifdef TTA_FAULT_PORT
    ,
    input  logic [31:0]  first,  // the column's first accumulator index (J)
    input  logic [31:0]  fault_lane,
    input  logic [31:0]  fault_and,
    input  logic [31:0]  fault_or
`endif
);
  /* verilator inline_module */
  logic [31:0] acc_r[32];  // lane (b, jj) at 4b + jj
  always_comb
    for (int jj = 0; jj < 4; jj++) racc[32*jj+:32] = `ACC({rsel, 2'(jj)});

  always_ff @(posedge clk) begin
    if (rst) begin
      for (int i = 0; i < 32; i++) acc_r[i] <= '0;
    end else if (en && |blk) begin  // terms formed only where written (cheap to simulate)
      // a loop in the simulation: only the lanes written are committed (unrolled, every
      // lane's pending write would be tested and cleared in every cycle)
      /* verilator unroll_disable */
      for (int b = 0; b < 8; b++)
        if (blk[b])
          for (int jj = 0; jj < 4; jj++)
            if (!t_dot || dmask[jj]) begin
              logic signed [31:0] a, t, x;
              int i, c;
              i = 4 * b + jj;
              c = i % 16;  // blocks b and b + 4 read the same code
              a = `ACC(i);
              x = 32'($signed(x8));
              if (t_p8) t = 32'($signed(p8[16*jj+:16]));
              else if (t_terx) t = !wcode[2*c] ? 32'd0 : wcode[2*c+1] ? -x : x;
              else if (t_ter1)
                t = !(rcode[2*c] && wcode[2*c]) ? 32'd0
                    : rcode[2*c+1] ^ wcode[2*c+1] ? -32'sd1 : 32'sd1;
              else if (t_binx) t = wbit[i] ? x : -x;
              else if (t_bin1) t = rbit[i] == wbit[i] ? 32'sd1 : -32'sd1;
              else if (t_dot) t = dot[32*jj+:32];
              else if (t_prod) t = prod[32*jj+:32];
              else t = 32'($signed(xj[8*jj+:8]));
              acc_r[i] <= rset ? t : rmax ? (t > a ? t : a) : (start ? 32'sd0 : a) + t;
            end
    end
  end
endmodule
`undef ACC
