// One post-processing group lane j: the 8-bit product of the broadcast and element-wise forms,
// byte j of a row times prm (radd) or rescaled by scalars (rsc), and the requantization of one
// accumulator (rq, bin, ter).
module tta_vmac_group (
    input  logic        p8_on,
    input  logic        radd_on,
    input  logic        rsc_on,
    input  logic        post_on,
    input  logic [7:0]  a8,
    input  logic [7:0]  w8,
    input  logic [31:0] prm,
    input  logic [8:0]  rsc_off,  // rsc: the bytes' offset, left shift and shift (from x)
    input  logic [4:0]  rsc_ls,
    input  logic [5:0]  rsc_sh,
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
  logic signed [31:0] v, rv, rm, t, y, lo, hi, thr, mask, rem;
  logic [5:0] rs;
  logic signed [6:0] sh1;
  logic [31:0] rnd;
  logic signed [63:0] p;
  always_comb begin  // each part computed only when its operation is triggered
    p8 = p8_on ? 16'($signed(a8)) * 16'($signed(w8)) : '0;
    {v, rv, rm, rs, sh1, t, y, thr, p, rnd, mask, rem} = '0;
    {q8, qbit, qcode} = '0;
    prod = radd_on ? 32'($signed(w8)) * $signed(prm) : '0;
    lo = 32'($signed(cfg[7:0]));
    hi = 32'($signed(cfg[15:8]));
    if (post_on || rsc_on) begin
      v = acc + bias;
      // what is requantized: the accumulator, or (rsc) the byte plus an offset, shifted left
      rv = rsc_on ? (32'($signed(w8)) + 32'($signed(rsc_off))) << rsc_ls : v;
      rm = rsc_on ? prm : mul;
      rs = rsc_on ? rsc_sh : shift;
      if (cfg[20]) begin
        // TFLite's single rounding: (rv * rm + 2^(30 + rs)) >> (31 + rs)
        p = 64'(rv) * 64'(rm);
        sh1 = 7'sd31 + 7'($signed(rs));
        if (sh1 > 7'sd0) p = p + (64'sd1 <<< (sh1 - 7'sd1));
        y = 32'(p >>> (sh1 > 7'sd0 ? sh1 : 7'sd0));
      end else if (cfg[19]) begin
        // TFLite: (rv << -rs) times rm, the doubled high word rounded (ties up), then a
        // right shift by rs rounded half away from zero
        if (rs[5]) rv = rv << (6'd0 - rs);
        p = 64'(rv) * 64'(rm);
        p = p + (p[63] ? 64'sd1 - 64'sh40000000 : 64'sh40000000);
        t = 32'((p + (p[63] ? 64'sh7FFFFFFF : 64'sd0)) >>> 31);  // toward zero
        if (rv == 32'h80000000 && rm == 32'h80000000) t = 32'h7FFFFFFF;
        mask = rs[5] ? 32'sd0 : $signed((32'd1 << rs[4:0]) - 32'd1);
        rem = t & mask;
        thr = (mask >>> 1) + (t[31] ? 32'sd1 : 32'sd0);
        y = t >>> (rs[5] ? 5'd0 : rs[4:0]);  // signed operands only: an arithmetic shift
        y = y + (rem > thr ? 32'sd1 : 32'sd0);
      end else begin
        // shift is 6-bit signed: >= 0 a rounding right shift after the high multiply, < 0 a
        // left shift of the 64-bit product before it (real scales >= 0.5).
        p = 64'(rv) * 64'(rm);
        if (rs[5]) p = p << (6'd0 - rs);
        p = p + 64'sh80000000;
        t = p[63:32];
        rnd = rs[5] ? 32'd0 : (32'd1 << rs[4:0]) >> 1;  // 2^30 for a shift of 31
        y = rs[5] ? t : (t + $signed(rnd)) >>> rs[4:0];
      end
      if (rsc_on) prod = y;
    end
    if (post_on) begin
      y = cfg[16] ? v : y;
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
