// Scalar load-store unit. The byte address is the operand `base` plus the trigger value
// (wrapping at the memory size), so a loop moves its base once and addresses the rest by
// immediates; words are little-endian and 4-byte aligned (the low address bits are ignored).
module tta_lsu #(
    parameter int LAT = 1,
    parameter int W = 64,  // data-memory row width in bits
    parameter int ROW_AW = 8  // row-address bits
) (
    input  logic              clk,
    input  logic              rst,
    input  logic              en,
    input  logic              data_we,
    input  logic [31:0]       data_d,
    input  logic              base_we,
    input  logic [31:0]       base_d,
    input  logic              trig,
    input  logic [31:0]       trig_d,
    input  logic [2:0]        op,
    output logic [31:0]       res,
    output logic [ROW_AW-1:0] mem_row,  // row read and written this cycle
    input  logic [W-1:0]      mem_rdata,
    output logic              mem_we,
    output logic [W-1:0]      mem_wdata,
    output logic [W-1:0]      mem_wmask,
    output logic [31:0]       read_bits,  // event counts of this cycle
    output logic [31:0]       write_bits
);
  `include "tta_ops.svh"
  localparam int BOFF = $clog2(W / 8);  // byte-offset bits within a row

  logic [31:0] data, d, base, a, r;
  logic [BOFF-1:0] boff, woff;
  logic [7:0] byte_v;

  always_ff @(posedge clk) begin
    if (rst) {data, base} <= '0;
    else if (en) begin
      if (data_we) data <= data_d;
      if (base_we) base <= base_d;
    end
  end

  always_comb begin
    d = data_we ? data_d : data;
    a = trig_d + (base_we ? base_d : base);
    mem_row = a[BOFF+ROW_AW-1:BOFF];
    boff = a[BOFF-1:0];
    woff = {boff[BOFF-1:2], 2'b00};
    byte_v = mem_rdata[8*boff+:8];
    mem_we = 1'b0;
    mem_wdata = '0;
    mem_wmask = '0;
    read_bits = '0;
    write_bits = '0;
    r = '0;
    if (trig) begin
      case (op)
        OP_LSU_LDW: begin
          r = mem_rdata[8*woff+:32];
          read_bits = 32;
        end
        OP_LSU_LDB: begin
          r = {{24{byte_v[7]}}, byte_v};
          read_bits = 8;
        end
        OP_LSU_LDBU: begin
          r = {24'b0, byte_v};
          read_bits = 8;
        end
        OP_LSU_STW: begin
          mem_we = 1'b1;
          mem_wdata[8*woff+:32] = d;
          mem_wmask[8*woff+:32] = '1;
          write_bits = 32;
        end
        OP_LSU_STB: begin
          mem_we = 1'b1;
          mem_wdata[8*boff+:8] = d[7:0];
          mem_wmask[8*boff+:8] = '1;
          write_bits = 8;
        end
        default: ;
      endcase
    end
  end

  wire is_load = op == OP_LSU_LDW || op == OP_LSU_LDB || op == OP_LSU_LDBU;
  tta_pipe #(.LAT(LAT)) u_pipe (.clk, .rst, .en, .in_valid(trig && is_load), .in_data(r), .res);
endmodule
