// Result pipeline of a function unit: a value triggered in cycle t appears on `res` from cycle
// t + LAT on and stays there until the next result arrives.
module tta_pipe #(
    parameter int LAT = 1
) (
    input  logic        clk,
    input  logic        rst,
    input  logic        en,
    input  logic        in_valid,
    input  logic [31:0] in_data,
    output logic [31:0] res
);
  generate
    if (LAT == 1) begin : g_direct
      always_ff @(posedge clk) begin
        if (rst) res <= '0;
        else if (en && in_valid) res <= in_data;
      end
    end else begin : g_stages
      logic [LAT-2:0] valid;
      logic [31:0] data[LAT-1];
      always_ff @(posedge clk) begin
        if (rst) begin
          valid <= '0;
          res   <= '0;
          for (int i = 0; i < LAT - 1; i++) data[i] <= '0;
        end else if (en) begin
          valid[0] <= in_valid;
          data[0]  <= in_data;
          for (int i = 1; i < LAT - 1; i++) begin
            valid[i] <= valid[i-1];
            data[i]  <= data[i-1];
          end
          if (valid[LAT-2]) res <= data[LAT-2];
        end
      end
    end
  endgenerate
endmodule
