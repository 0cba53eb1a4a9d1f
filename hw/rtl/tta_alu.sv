// Scalar ALU: res = in1 <op> trigger, on unsigned 32-bit words (see hw/golden.py `alu`).
module tta_alu #(
    parameter int LAT = 1
) (
    input  logic        clk,
    input  logic        rst,
    input  logic        en,
    input  logic        in1_we,
    input  logic [31:0] in1_d,
    input  logic        trig,
    input  logic [31:0] trig_d,
    input  logic [4:0]  op,
    output logic [31:0] res
);
  `include "tta_ops.svh"
  logic [31:0] in1, a, b, r;
  logic signed [63:0] sa, sb, prod, prodr;

  always_ff @(posedge clk) begin
    if (rst) in1 <= '0;
    else if (en && in1_we) in1 <= in1_d;
  end

  always_comb begin
    a = in1_we ? in1_d : in1;  // an operand moved with the trigger is used at once
    b = trig_d;
    sa = 64'($signed(a));
    sb = 64'($signed(b));
    prod = sa * sb;
    prodr = prod + 64'sh80000000;  // round half up before taking the high word
    case (op)
      OP_ALU_ADD:   r = a + b;
      OP_ALU_SUB:   r = a - b;
      OP_ALU_AND:   r = a & b;
      OP_ALU_OR:    r = a | b;
      OP_ALU_XOR:   r = a ^ b;
      OP_ALU_SHL:   r = a << b[4:0];
      OP_ALU_SHR:   r = a >> b[4:0];
      OP_ALU_SRA:   r = $signed(a) >>> b[4:0];
      OP_ALU_MUL:   r = prod[31:0];
      OP_ALU_MULHI: r = prod[63:32];
      OP_ALU_MULHR: r = prodr[63:32];
      OP_ALU_EQ:    r = {31'b0, a == b};
      OP_ALU_NE:    r = {31'b0, a != b};
      OP_ALU_LT:    r = {31'b0, $signed(a) < $signed(b)};
      OP_ALU_LTU:   r = {31'b0, a < b};
      OP_ALU_MIN:   r = ($signed(a) < $signed(b)) ? a : b;
      OP_ALU_MAX:   r = ($signed(a) < $signed(b)) ? b : a;
      default:      r = '0;
    endcase
  end

  tta_pipe #(.LAT(LAT)) u_pipe (.clk, .rst, .en, .in_valid(trig), .in_data(r), .res);
endmodule
