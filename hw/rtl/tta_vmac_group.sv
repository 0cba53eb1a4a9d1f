// One post-processing group lane j: the 8-bit product of the broadcast and element-wise forms,
// byte j of a row times prm (radd), and the requantization of one accumulator (rq, bin, ter).
module tta_vmac_group (
    input  logic        p8_on,
    input  logic        radd_on,
    input  logic        post_on,
    input  logic [7:0]  a8,
    input  logic [7:0]  w8,
    input  logic [31:0] prm,
    input  logic [31:0] acc,
    input  logic [31:0] bias,
    input  logic [31:0] mul,
    input  logic [5:0]  shift,
    input  logic [31:0] cfg,
    output logic [15:0] p8,
    output logic [31:0] prod,
    output logic [7:0]  q8,
    output logic        qbit,
    output logic [1:0]  qcode
);
  logic signed [31:0] v, t, y, lo, hi, thr;
  logic [31:0] rnd;
  logic signed [63:0] p;
  always_comb begin  // each part computed only when its operation is triggered
    p8 = p8_on ? 16'($signed(a8)) * 16'($signed(w8)) : '0;
    prod = radd_on ? 32'($signed(w8)) * $signed(prm) : '0;
    {v, t, y, thr, p, rnd} = '0;
    {q8, qbit, qcode} = '0;
    lo = 32'($signed(cfg[7:0]));
    hi = 32'($signed(cfg[15:8]));
    if (post_on) begin
      v = acc + bias;
      // shift is 6-bit signed: >= 0 a rounding right shift after the high multiply, < 0 a
      // left shift of the 64-bit product before it (real scales >= 0.5).
      p = 64'(v) * 64'($signed(mul));
      if (shift[5]) p = p << (6'd0 - shift);
      p = p + 64'sh80000000;
      t = p[63:32];
      rnd = shift[5] ? 32'd0 : (32'd1 << shift[4:0]) >> 1;  // 2^30 for a shift of 31
      y = cfg[16] ? v : shift[5] ? t : (t + $signed(rnd)) >>> shift[4:0];
      y = y + 32'($signed(cfg[31:24]));
      thr = $signed(mul);
      y = y < lo ? lo : y;  // clip = min(max(y, lo), hi): hi wins when lo > hi
      q8 = y > hi ? hi[7:0] : y[7:0];
      qbit = !v[31];
      // cfg bit 18: no -1 codes (a ReLU before the ternary output)
      qcode = v > thr ? 2'b01 : (v < -thr && !cfg[18]) ? 2'b11 : 2'b00;
    end
  end
endmodule
