using static Quantize.Kernels.Tests.Runtime.QdqModelBuilder;
using DataType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// QDQ Conv / MatMul / Gemm (as quantize_static writes them) are fused into integer nodes whose outputs stay within one
/// quantization step of ONNX Runtime's (which fuses the same patterns into QLinearConv and friends); the plan shows the
/// fusion; the float path (UseIntegerKernels = false) and weight-only models keep the standard operators.
/// </summary>
public class QdqFusionTests
{
    public enum Bias { None, Int32, Int32NoZeroPoint, Float }

    public enum Activation { None, Relu, Clip6 }

    public sealed record ConvCase(string Name, int[] Input, int[] Weights, int Group, int[] Strides, int[] Pads, int[] Dilations,
        bool PerChannel = true, bool SignedX = false, Bias Bias = Bias.Int32, Activation Activation = Activation.None, bool QuantizedOutput = true,
        bool UnsignedWeights = false, int OutputZeroPoint = 128);

    private static readonly ConvCase[] ConvCases =
    [
        new("3x3 pad 1, per-channel, int32 bias, Relu", [1, 8, 10, 9], [16, 8, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1], Activation: Activation.Relu),
        new("Relu into a zero point of 0", [1, 8, 10, 9], [16, 8, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1], Activation: Activation.Relu, OutputZeroPoint: 0),
        new("7x7 stride 2 asymmetric pads, per-tensor, no bias", [2, 3, 23, 20], [12, 3, 7, 7], 1, [2, 2], [3, 3, 2, 2], [1, 1], PerChannel: false, Bias: Bias.None),
        new("grouped, strided, dilated, float bias", [1, 6, 12, 11], [4, 3, 3, 2], 2, [1, 2], [2, 0, 1, 1], [2, 1], Bias: Bias.Float),
        new("depthwise with Clip 0..6", [2, 8, 9, 9], [8, 1, 3, 3], 8, [2, 2], [1, 1, 1, 1], [1, 1], Activation: Activation.Clip6),
        new("1x1 pointwise, int8 activations", [1, 24, 7, 6], [40, 24, 1, 1], 1, [1, 1], [0, 0, 0, 0], [1, 1], SignedX: true, OutputZeroPoint: 0),
        new("int8 activations, 3x3 stride 2", [1, 16, 14, 14], [32, 16, 3, 3], 1, [2, 2], [1, 1, 0, 0], [1, 1], SignedX: true, Bias: Bias.Int32NoZeroPoint, OutputZeroPoint: -10),
        new("uint8 weights with zero points", [1, 5, 8, 8], [6, 5, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1], UnsignedWeights: true),
        new("1-D", [2, 4, 19], [6, 4, 3], 1, [2], [1, 1], [1]),
        new("3-D, per-tensor weights with a per-tensor int32 bias", [1, 3, 5, 6, 7], [4, 3, 2, 3, 2], 1, [1, 2, 1], [1, 0, 1, 0, 1, 1], [2, 1, 1], PerChannel: false),
        new("float output (a last layer)", [1, 8, 10, 9], [16, 8, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1], Activation: Activation.Relu, QuantizedOutput: false),
        new("large enough for parallel chunks", [1, 32, 40, 40], [32, 32, 3, 3], 1, [1, 1], [1, 1, 1, 1], [1, 1], Activation: Activation.Relu),
    ];

    public static TheoryData<string> ConvNames() => new(ConvCases.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(ConvNames))]
    public void Qdq_conv_runs_fused_within_one_step_of_onnx_runtime(string name)
    {
        var c = ConvCases.Single(c => c.Name == name);
        var random = new Random(name.Length * 131 + c.Input.Sum());
        var (model, x) = ConvModel(c, random);
        int offByOne = QdqOracle.Compare(model, x, c.Input, ["QuantizeLinear", "QuantizedConv"], floatTolerance: 1e-5);
        TestContext.Current.TestOutputHelper?.WriteLine($"{name}: {offByOne} values one step from ONNX Runtime's");
    }

    [Fact]
    public void With_integer_kernels_off_the_qdq_conv_runs_in_float_within_one_step()
    {
        var c = ConvCases[0];
        var (model, x) = ConvModel(c, new Random(5));
        // The float Conv takes its Relu in (ConvReluFusion); the QDQ pairs stay.
        QdqOracle.Compare(model, x, c.Input, ["QuantizeLinear", "DequantizeLinear", "Conv", "QuantizeLinear"], integerKernels: false);
    }

    [Fact]
    public void Consecutive_fused_convs_pass_8_bit_values_without_dequantizing()
    {
        var random = new Random(11);
        var b = new QdqModelBuilder();
        b.Input("X", DataType.Float, 1, 6, 12, 12);
        b.Output("Y", DataType.Uint8);
        var (_, x) = b.QuantizeDequantize("X", 1 / 127.5f, 128, signed: false);
        var (h, hScale, hZero, hScaleValue) = Conv(b, random, x, 1 / 127.5f, [12, 6, 3, 3], [1, 1, 1, 1], "h", relu: true);
        string hdq = b.Unique("h_dq");
        b.Node("DequantizeLinear", [h, hScale, hZero], hdq);
        Conv(b, random, hdq, hScaleValue, [8, 12, 3, 3], [1, 1, 1, 1], "Y", relu: false);
        float[] input = Uniform(random, 6 * 12 * 12);
        QdqOracle.Compare(b.Build(), input, [1, 6, 12, 12], ["QuantizeLinear", "QuantizedConv", "QuantizedConv"]);
    }

    public sealed record MatMulCase(string Name, int[] Input, int N, string Op = "MatMul", bool TransB = false, bool PerChannel = true, bool SignedX = false,
        Bias Bias = Bias.None, Activation Activation = Activation.None, bool QuantizedOutput = true, float Alpha = 1f);

    private static readonly MatMulCase[] MatMulCases =
    [
        new("MatMul 2-D per-channel", [7, 40], 24),
        new("MatMul batched 3-D, int8 activations", [2, 5, 33], 20, SignedX: true),
        new("MatMul per-tensor with Relu", [9, 64], 48, PerChannel: false, Activation: Activation.Relu),
        new("MatMul float output", [2, 3, 50], 17, QuantizedOutput: false),
        new("Gemm transB with int32 bias", [6, 72], 40, Op: "Gemm", TransB: true, Bias: Bias.Int32),
        new("Gemm without transB, float bias, Relu", [5, 30], 26, Op: "Gemm", Bias: Bias.Float, Activation: Activation.Relu),
        new("Gemm alpha 0.5 with an int32 bias", [4, 20], 12, Op: "Gemm", TransB: true, Bias: Bias.Int32, Alpha: 0.5f),
        new("Gemm float output with int32 bias", [3, 64], 10, Op: "Gemm", TransB: true, Bias: Bias.Int32, QuantizedOutput: false),
    ];

    public static TheoryData<string> MatMulNames() => new(MatMulCases.Select(c => c.Name));

    [Theory]
    [MemberData(nameof(MatMulNames))]
    public void Qdq_matmul_and_gemm_run_fused_within_one_step_of_onnx_runtime(string name)
    {
        var c = MatMulCases.Single(c => c.Name == name);
        var random = new Random(name.Length * 37 + c.N);
        var (model, x) = MatMulModel(c, random);
        int offByOne = QdqOracle.Compare(model, x, c.Input, ["QuantizeLinear", "QuantizedMatMul"], floatTolerance: 1e-5);
        TestContext.Current.TestOutputHelper?.WriteLine($"{name}: {offByOne} values one step from ONNX Runtime's");
    }

    [Fact]
    public void Weight_only_dequantization_is_folded_at_load_and_the_float_kernels_run()
    {
        // ONNX Runtime may run DequantizeLinear + MatMul on approximate kernels of its own, so its oracle is the float
        // model with the weights dequantized here by ONNX's formula, (w - zw) x sw in float32.
        var random = new Random(21);
        foreach (string op in new[] { "Conv", "MatMul", "Gemm" })
        {
            int[] shape = op == "Conv" ? [1, 4, 9, 9] : [5, 16];
            long[] wDims = op == "Conv" ? [6, 4, 3, 3] : op == "Gemm" ? [10, 16] : [16, 10];
            int axis = op == "MatMul" ? 1 : 0, channels = (int)wDims[axis], count = (int)wDims.Aggregate(1L, (p, d) => p * d);
            int[] w = Int8Values(random, count);
            float[] sw = Scales(random, channels, 0.02f);
            int inner = (int)wDims.Skip(axis + 1).Aggregate(1L, (p, d) => p * d);
            float[] dequantized = w.Select((v, i) => (float)v * sw[i / inner % channels]).ToArray();

            byte[] Model(bool quantized)
            {
                var b = new QdqModelBuilder();
                b.Input("X", DataType.Float, shape.Select(d => (long)d).ToArray());
                b.Output("Y", DataType.Float);
                string weights = quantized ? b.Weights(wDims, w, sw, null, signed: true, axis) : b.Floats("w", wDims, dequantized);
                if (op == "Gemm") b.Node("Gemm", ["X", weights], "Y", Int("transB", 1));
                else b.Node(op, ["X", weights], "Y", op == "Conv" ? [Ints("pads", 1, 1, 1, 1)] : []);
                return b.Build();
            }

            QdqOracle.Compare(Model(quantized: true), Uniform(random, shape.Aggregate(1, (p, d) => p * d)), shape, [op], floatTolerance: 1e-5,
                oracleModel: Model(quantized: false));
        }
    }

    [Fact]
    public void A_weight_quantized_along_the_inner_axis_is_not_fused_and_runs_in_float()
    {
        // Scales along K cannot be applied after the integer sum, so the weights are dequantized at load instead. The
        // oracle is ONNX Runtime on the same graph with the weights dequantized here, (w - zw) x sw[k] in float32.
        var random = new Random(31);
        int[] shape = [4, 24];
        int[] w = Int8Values(random, 24 * 24);
        float[] sw = Scales(random, 24, 0.01f);
        byte[] Model(bool quantized)
        {
            var b = new QdqModelBuilder();
            b.Input("X", DataType.Float, 4, 24);
            b.Output("Y", DataType.Uint8);
            var (_, x) = b.QuantizeDequantize("X", 1 / 127.5f, 128, signed: false);
            string weights = quantized
                ? b.Weights([24, 24], w, sw, null, signed: true, axis: 0)
                : b.Floats("w", [24, 24], w.Select((v, i) => v * sw[i / 24]).ToArray());
            b.Node("MatMul", [x, weights], "y");
            b.Node("QuantizeLinear", ["y", b.Scalar("y_scale", 0.05f), b.ZeroPoint("y_zp", 128, false)], "Y");
            return b.Build();
        }
        QdqOracle.Compare(Model(quantized: true), Uniform(random, 4 * 24), shape, ["QuantizeLinear", "DequantizeLinear", "MatMul", "QuantizeLinear"],
            oracleModel: Model(quantized: false));
    }

    [Fact]
    public void Per_channel_int32_bias_dequantizes_on_the_float_path()
    {
        var c = ConvCases[0] with { Activation = Activation.None };
        var (model, x) = ConvModel(c, new Random(8));
        QdqOracle.Compare(model, x, c.Input, ["QuantizeLinear", "DequantizeLinear", "Conv", "QuantizeLinear"], integerKernels: false);
    }

    private static (byte[] Model, float[] X) ConvModel(ConvCase c, Random random)
    {
        var b = new QdqModelBuilder();
        b.Input("X", DataType.Float, c.Input.Select(d => (long)d).ToArray());
        b.Output("Y", c.QuantizedOutput ? (c.OutputZeroPoint < 0 || c.SignedX ? DataType.Int8 : DataType.Uint8) : DataType.Float);
        float sx = c.SignedX ? 1 / 127f : 1 / 127.5f;
        var (_, x) = b.QuantizeDequantize("X", sx, c.SignedX ? 0 : 128, c.SignedX);
        int outputs = c.Weights[0], depth = c.Weights.Skip(1).Aggregate(1, (p, d) => p * d);
        float[] sw = Scales(random, c.PerChannel ? outputs : 1, 0.01f);
        int[] w = c.UnsignedWeights ? Enumerable.Range(0, outputs * depth).Select(_ => random.Next(256)).ToArray() : Int8Values(random, outputs * depth);
        int[]? zw = c.UnsignedWeights ? Enumerable.Range(0, sw.Length).Select(_ => random.Next(100, 156)).ToArray() : null;
        string wdq = b.Weights(c.Weights.Select(d => (long)d).ToArray(), w, sw, zw, signed: !c.UnsignedWeights, axis: 0);
        var inputs = new List<string> { x, wdq };
        float[] realScale = Enumerable.Range(0, outputs).Select(m => sx * sw[c.PerChannel ? m : 0]).ToArray();
        switch (c.Bias)
        {
            case Bias.Int32 or Bias.Int32NoZeroPoint:
                inputs.Add(b.Int32Bias(Enumerable.Range(0, outputs).Select(_ => random.Next(-3000, 3000)).ToArray(), c.PerChannel ? realScale : [realScale[0]],
                    withZeroPoint: c.Bias == Bias.Int32));
                break;
            case Bias.Float:
                inputs.Add(b.Floats("bias", [outputs], Enumerable.Range(0, outputs).Select(_ => random.NextSingle() - 0.5f).ToArray()));
                break;
        }
        var attributes = new[] { Ints("strides", c.Strides.Select(v => (long)v).ToArray()), Ints("pads", c.Pads.Select(v => (long)v).ToArray()),
            Ints("dilations", c.Dilations.Select(v => (long)v).ToArray()), Int("group", c.Group) };
        double spread = Math.Sqrt(depth) * 73 * 73 * realScale.Average();
        Finish(b, "Conv", inputs, attributes, c.Activation, c.QuantizedOutput, spread, c.OutputZeroPoint, c.SignedX || c.OutputZeroPoint < 0);
        return (b.Build(), Uniform(random, c.Input.Aggregate(1, (p, d) => p * d)));
    }

    private static (byte[] Model, float[] X) MatMulModel(MatMulCase c, Random random)
    {
        var b = new QdqModelBuilder();
        b.Input("X", DataType.Float, c.Input.Select(d => (long)d).ToArray());
        b.Output("Y", c.QuantizedOutput ? (c.SignedX ? DataType.Int8 : DataType.Uint8) : DataType.Float);
        float sx = c.SignedX ? 1 / 127f : 1 / 127.5f;
        var (_, x) = b.QuantizeDequantize("X", sx, c.SignedX ? 0 : 128, c.SignedX);
        int k = c.Input[^1], n = c.N;
        float[] sw = Scales(random, c.PerChannel ? n : 1, 0.01f);
        long[] dims = c.TransB ? [n, k] : [k, n];
        string wdq = b.Weights(dims, Int8Values(random, k * n), sw, null, signed: true, axis: c.TransB ? 0 : 1);
        var inputs = new List<string> { x, wdq };
        float[] realScale = Enumerable.Range(0, n).Select(j => sx * sw[c.PerChannel ? j : 0]).ToArray();
        if (c.Bias is Bias.Int32)
            inputs.Add(b.Int32Bias(Enumerable.Range(0, n).Select(_ => random.Next(-3000, 3000)).ToArray(), c.PerChannel ? realScale : [realScale[0]], withZeroPoint: true));
        else if (c.Bias is Bias.Float)
            inputs.Add(b.Floats("bias", [1, n], Enumerable.Range(0, n).Select(_ => random.NextSingle() - 0.5f).ToArray()));
        var attributes = c.Op == "Gemm" ? new[] { Int("transB", c.TransB ? 1 : 0), Float("alpha", c.Alpha) } : [];
        double spread = Math.Sqrt(k) * 73 * 73 * realScale.Average() * c.Alpha;
        Finish(b, c.Op, inputs, attributes, c.Activation, c.QuantizedOutput, spread, c.SignedX ? 0 : 128, c.SignedX);
        return (b.Build(), Uniform(random, c.Input.Aggregate(1, (p, d) => p * d)));
    }

    /// <summary>The op, its activation, and a QuantizeLinear covering about three standard deviations of the result into "Y".</summary>
    private static void Finish(QdqModelBuilder b, string op, List<string> inputs, Quantize.Kernels.Models.Onnx.AttributeProto[] attributes, Activation activation, bool quantize,
        double spread, int zeroPoint, bool signed)
    {
        string result = quantize || activation != Activation.None ? b.Unique("y") : "Y";
        b.Node(op, inputs.ToArray(), result, attributes);
        if (activation != Activation.None)
        {
            string activated = quantize ? b.Unique("act") : "Y";
            if (activation == Activation.Relu) b.Node("Relu", [result], activated);
            else b.Node("Clip", [result, b.Scalar("min", 0f), b.Scalar("max", 6f)], activated);
            result = activated;
        }
        if (quantize) b.Node("QuantizeLinear", [result, b.Scalar("y_scale", (float)(6 * spread / 255)), b.ZeroPoint("y_zp", zeroPoint, signed)], "Y");
    }

    /// <summary>A QDQ Conv (per-channel int8 weights, int32 bias) into a QuantizeLinear writing <paramref name="output"/>; returns its name, scale and zero point.</summary>
    private static (string Output, string Scale, string ZeroPoint, float ScaleValue) Conv(QdqModelBuilder b, Random random, string x, float sx, long[] dims, long[] pads,
        string output, bool relu)
    {
        int outputs = (int)dims[0], depth = (int)(dims[1] * dims[2] * dims[3]);
        float[] sw = Scales(random, outputs, 0.01f);
        string wdq = b.Weights(dims, Int8Values(random, outputs * depth), sw, null, signed: true, axis: 0);
        string bias = b.Int32Bias(Enumerable.Range(0, outputs).Select(_ => random.Next(-2000, 2000)).ToArray(), sw.Select(s => sx * s).ToArray(), true);
        string y = b.Unique("conv");
        b.Node("Conv", [x, wdq, bias], y, Ints("pads", pads));
        if (relu)
        {
            string r = b.Unique("relu");
            b.Node("Relu", [y], r);
            y = r;
        }
        // (x - zx) spans about 0..255 here (Relu'd or centered inputs), so its spread is that of the weights.
        double spread = Math.Sqrt(depth) * 73 * 73 * sw.Average() * sx;
        float scaleValue = (float)(6 * spread / 255);
        string scale = b.Scalar("y_scale", scaleValue), zeroPoint = b.ZeroPoint("y_zp", relu ? 0 : 128, false);
        b.Node("QuantizeLinear", [y, scale, zeroPoint], output);
        return (output, scale, zeroPoint, scaleValue);
    }

    private static int[] Int8Values(Random random, int count) => Enumerable.Range(0, count).Select(_ => random.Next(-127, 128)).ToArray();

    private static float[] Scales(Random random, int count, float size) => Enumerable.Range(0, count).Select(_ => size * (0.5f + random.NextSingle())).ToArray();

    private static float[] Uniform(Random random, int count) => Enumerable.Range(0, count).Select(_ => random.NextSingle() * 2 - 1).ToArray();
}
