// Vector MAC: W/8 int8 lanes with int32 accumulators. The operand `x` (low byte, signed) is
// broadcast to every lane; the trigger value is the data-memory row holding one signed weight
// byte per lane.  mac: acc += x * w;  mac0: acc = x * w;  get: res = acc[trigger mod lanes].
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
    input  logic [1:0]        op,
    output logic [31:0]       res,
    output logic [ROW_AW-1:0] mem_row,
    input  logic [W-1:0]      mem_rdata,
    output logic              macs  // a mac or mac0 this cycle (for the event counters)
);
  `include "tta_ops.svh"
  localparam int L = W / 8;
  localparam int LB = $clog2(L);

  logic [31:0] x, xv;
  logic [31:0] acc[L];

  always_comb begin
    xv = x_we ? x_d : x;
    mem_row = trig_d[ROW_AW-1:0];
    macs = trig && (op == OP_VMAC_MAC || op == OP_VMAC_MAC0);
  end

  // The lane products are formed only on a MAC (cheaper to simulate than a combinational array).
  always_ff @(posedge clk) begin
    if (rst) begin
      x <= '0;
      for (int l = 0; l < L; l++) acc[l] <= '0;
    end else if (en) begin
      if (x_we) x <= x_d;
      if (macs)
        for (int l = 0; l < L; l++)
          acc[l] <= (op == OP_VMAC_MAC0 ? 32'd0 : acc[l])
              + 32'(16'($signed(xv[7:0])) * 16'($signed(mem_rdata[8*l+:8])));
    end
  end

  wire get = trig && op == OP_VMAC_GET;
  tta_pipe #(.LAT(LAT)) u_pipe (.clk, .rst, .en, .in_valid(get), .in_data(acc[trig_d[LB-1:0]]), .res);
endmodule
