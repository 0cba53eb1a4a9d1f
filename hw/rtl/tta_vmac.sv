// Vector MAC on one W-bit datapath. The operand `x` (low byte, signed) is broadcast to every
// lane; the trigger value names the data-memory row holding the packed weights:
//   int8:    W/8 lanes, a signed byte per lane            (mac, mac0)
//   ternary: W/2 lanes, a 2-bit code per lane: bit 0 = nonzero, bit 1 = negative  (tmac, tmac0)
//   binary:  W lanes, a bit per lane: 1 = +1, 0 = -1      (bmac, bmac0)
// mac*: acc[l] += x * w[l]; mac*0: acc[l] = x * w[l]; lanes past the precision's lane count keep
// their value. get: res = acc[trigger mod W]. Accumulators are int32 and wrap.
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
    input  logic              trig,
    input  logic [31:0]       trig_d,
    input  logic [2:0]        op,
    output logic [31:0]       res,
    output logic [ROW_AW-1:0] mem_row,
    input  logic [W-1:0]      mem_rdata,
    output logic              mac8,  // a MAC of this precision this cycle (event counters)
    output logic              mac2,
    output logic              mac1
);
  `include "tta_ops.svh"
  localparam int LB = $clog2(W);

  logic [31:0] x, xv;
  logic [31:0] acc[W];
  logic start;  // mac*0: start a new sum

  always_comb begin
    xv = x_we ? x_d : x;
    mem_row = trig_d[ROW_AW-1:0];
    mac8 = trig && (op == OP_VMAC_MAC || op == OP_VMAC_MAC0);
    mac2 = trig && (op == OP_VMAC_TMAC || op == OP_VMAC_TMAC0);
    mac1 = trig && (op == OP_VMAC_BMAC || op == OP_VMAC_BMAC0);
    start = op == OP_VMAC_MAC0 || op == OP_VMAC_TMAC0 || op == OP_VMAC_BMAC0;
  end

  // Lane terms are formed only on a MAC (cheaper to simulate than a combinational array).
  always_ff @(posedge clk) begin
    if (rst) begin
      x <= '0;
      for (int l = 0; l < W; l++) acc[l] <= '0;
    end else if (en) begin
      if (x_we) x <= x_d;
      if (mac8)
        for (int l = 0; l < W / 8; l++)
          acc[l] <= (start ? 32'd0 : acc[l])
              + 32'(16'($signed(xv[7:0])) * 16'($signed(mem_rdata[8*l+:8])));
      if (mac2)
        for (int l = 0; l < W / 2; l++)
          acc[l] <= (start ? 32'd0 : acc[l]) + (!mem_rdata[2*l] ? 32'd0 :
              mem_rdata[2*l+1] ? -(32'($signed(xv[7:0]))) : 32'($signed(xv[7:0])));
      if (mac1)
        for (int l = 0; l < W; l++)
          acc[l] <= (start ? 32'd0 : acc[l])
              + (mem_rdata[l] ? 32'($signed(xv[7:0])) : -(32'($signed(xv[7:0]))));
    end
  end

  wire get = trig && op == OP_VMAC_GET;
  tta_pipe #(.LAT(LAT)) u_pipe (.clk, .rst, .en, .in_valid(get), .in_data(acc[trig_d[LB-1:0]]), .res);
endmodule
