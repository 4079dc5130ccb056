using Quantize.Kernels.Runtime;
using static Quantize.Kernels.Tests.Runtime.QdqModelBuilder;
using DataType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// QDQ MaxPool and Add run on the 8-bit values: the plan shows the fused node, the outputs equal our unfused float path
/// exactly (the same float32 steps, or an exact monotonic table) and stay within one step of ONNX Runtime's.
/// </summary>
public class QdqElementwiseFusionTests
{
    [Theory]
    [InlineData(false, false, 3, 2, 1, 37)]
    [InlineData(true, true, 3, 2, 2, 37)]
    // Rows of several 32-output vectors along the width, strides 1 and 2, even and odd windows.
    [InlineData(false, false, 3, 1, 1, 70)]
    [InlineData(true, false, 2, 2, 1, 131)]
    [InlineData(false, true, 3, 2, 1, 200)]
    public void Qdq_max_pool_runs_on_8_bit_values(bool signed, bool requantize, int kernel, int stride, int dilation, int width)
    {
        var random = new Random(signed ? 3 : 4);
        int[] shape = [2, 5, 13, width]; // rows wider than one vector, and a tail
        var b = new QdqModelBuilder();
        b.Input("X", DataType.Float, shape.Select(d => (long)d).ToArray());
        b.Output("Y", signed ? DataType.Int8 : DataType.Uint8);
        float scale = 1 / 100f;
        int zeroPoint = signed ? -3 : 120;
        var (_, x) = b.QuantizeDequantize("X", scale, zeroPoint, signed);
        string pooled = b.Unique("pooled");
        b.Node("MaxPool", [x], pooled, Ints("kernel_shape", 3, kernel), Ints("strides", 2, stride), Ints("pads", 1, 1, 1, kernel > 2 ? 0 : 1),
            Int("ceil_mode", requantize ? 1 : 0), Ints("dilations", 1, dilation));
        // The output's parameters: the input's (as quantize_static writes MaxPool), or others, which need the table.
        b.Node("QuantizeLinear", [pooled, b.Scalar("y_scale", requantize ? scale * 1.7f : scale), b.ZeroPoint("y_zp", requantize ? 10 : zeroPoint, signed)], "Y");
        byte[] model = b.Build();
        float[] input = Enumerable.Range(0, shape.Aggregate(1, (p, d) => p * d)).Select(_ => random.NextSingle() * 2.6f - 1.3f).ToArray();
        QdqOracle.Compare(model, input, shape, ["QuantizeLinear", "QuantizedMaxPool"]);
        AssertSameAsUnfused(model, input, shape);
    }

    public enum Second { SameShape, BroadcastConstant }

    [Theory]
    [InlineData(false, Second.SameShape, "Relu")]
    [InlineData(true, Second.SameShape, "")]
    [InlineData(false, Second.BroadcastConstant, "Clip")]
    [InlineData(true, Second.BroadcastConstant, "Relu")]
    public void Qdq_add_runs_on_8_bit_values(bool signed, Second second, string activation)
    {
        var random = new Random(signed ? 7 : 8);
        int[] shape = [1, 6, 11, 9];
        var b = new QdqModelBuilder();
        b.Input("X", DataType.Float, shape.Select(d => (long)d).ToArray());
        b.Output("Y", signed ? DataType.Int8 : DataType.Uint8);
        var (_, x) = b.QuantizeDequantize("X", 1 / 110f, signed ? 2 : 125, signed);
        string other;
        if (second == Second.SameShape)
        {
            string scaled = b.Unique("scaled");
            b.Node("Mul", ["X", b.Scalar("factor", -0.7f)], scaled);
            (_, other) = b.QuantizeDequantize(scaled, 1 / 140f, signed ? -5 : 131, signed);
        }
        else
        {
            int[] values = Enumerable.Range(0, 6).Select(_ => signed ? random.Next(-128, 128) : random.Next(256)).ToArray();
            string constant = b.Bytes("c", [1, 6, 1, 1], values, signed);
            other = b.Unique("c_dq");
            b.Node("DequantizeLinear", [constant, b.Scalar("c_scale", 1 / 90f), b.ZeroPoint("c_zp", signed ? 0 : 128, signed)], other);
        }
        string sum = b.Unique("sum");
        b.Node("Add", [x, other], sum);
        if (activation.Length > 0)
        {
            string activated = b.Unique("activated");
            if (activation == "Relu") b.Node("Relu", [sum], activated);
            else b.Node("Clip", [sum, b.Scalar("lo", -0.2f), b.Scalar("hi", 0.9f)], activated);
            sum = activated;
        }
        b.Node("QuantizeLinear", [sum, b.Scalar("y_scale", 1 / 75f), b.ZeroPoint("y_zp", signed ? -20 : 100, signed)], "Y");
        byte[] model = b.Build();
        float[] input = Enumerable.Range(0, shape.Aggregate(1, (p, d) => p * d)).Select(_ => random.NextSingle() * 2.2f - 1.1f).ToArray();
        string[] expected = second == Second.SameShape ? ["QuantizeLinear", "Mul", "QuantizeLinear", "QuantizedAdd"] : ["QuantizeLinear", "QuantizedAdd"];
        int offByOne = QdqOracle.Compare(model, input, shape, expected);
        TestContext.Current.TestOutputHelper?.WriteLine($"{offByOne} values one step from ONNX Runtime's");
        AssertSameAsUnfused(model, input, shape);
    }

    /// <summary>The fused plan gives exactly what the standard operators give (integer kernels off).</summary>
    private static void AssertSameAsUnfused(byte[] model, float[] x, int[] shape)
    {
        using var fused = ModelSession.Load(model, "fused.onnx", new SessionOptions { Threads = 1 });
        using var unfused = ModelSession.Load(model, "unfused.onnx", new SessionOptions { Threads = 1, UseIntegerKernels = false });
        Assert.Contains("DequantizeLinear", QdqOracle.PlannedOps(unfused));
        Assert.Equal(QdqOracle.Run(unfused, x, shape).Values, QdqOracle.Run(fused, x, shape).Values);
    }
}
