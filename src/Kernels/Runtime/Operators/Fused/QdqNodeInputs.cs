using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The inputs and attributes of the fused QDQ nodes (<c>QuantizedConv</c>, <c>QuantizedMatMul</c>) that
/// <see cref="Planning.QdqLinearFusion"/> writes, read once at load. Inputs:
/// <c>x, x_scale, x_zero_point, w, w_scale, w_zero_point, bias, bias_scale, bias_zero_point, y_scale, y_zero_point</c>
/// (x is 8-bit; w constant 8-bit; bias a constant int32 with its DequantizeLinear's scale and zero point, or float,
/// or absent; y_scale present when the output is requantized). Attributes: the Conv/Gemm ones, plus
/// <c>clip_min</c>/<c>clip_max</c> (a Relu or Clip folded in) and <c>output_dtype</c> (the QuantizeLinear's).
/// </summary>
internal static class QdqNodeInputs
{
    public const int X = 0, XScale = 1, XZeroPoint = 2, W = 3, WScale = 4, WZeroPoint = 5, Bias = 6, BiasScale = 7, BiasZeroPoint = 8, YScale = 9, YZeroPoint = 10;

    /// <summary>The activation's zero point and its type when the model says it (null: either 8-bit type, zero point 0).</summary>
    public static (int ZeroPoint, TensorElementType? Type) Activation(OperatorBuildContext context)
    {
        float[] scale = Scales(context, XScale, "x_scale");
        if (scale.Length != 1) throw context.Unsupported("the activation must be quantized per tensor");
        if (!context.HasInput(XZeroPoint)) return (0, null);
        var zp = context.TakeConstantInput(XZeroPoint) ?? throw context.Unsupported("x_zero_point must be constant");
        if (zp.Length != 1 || zp.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8))
            throw context.Unsupported("x_zero_point must be one 8-bit value");
        return (QuantizationInputs.ZeroPoints(zp, context.Label)[0], zp.ElementType);
    }

    /// <summary>The constant 8-bit weights (taken: the operator keeps them packed).</summary>
    public static Tensor Weights(OperatorBuildContext context)
    {
        var w = context.TakeConstantInput(W) ?? throw context.Unsupported("the weights must be constant");
        if (w.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8))
            throw context.Unsupported($"{w.ElementType.DisplayName()} weights (8-bit only)");
        return w;
    }

    /// <summary>The weights' zero points: empty, one, or one per output channel.</summary>
    public static int[] WeightZeroPoints(OperatorBuildContext context, int channels)
    {
        if (!context.HasInput(WZeroPoint)) return [];
        var zp = context.TakeConstantInput(WZeroPoint) ?? throw context.Unsupported("w_zero_point must be constant");
        var values = QuantizationInputs.ZeroPoints(zp, context.Label);
        if (values.Length != 1 && values.Length != channels) throw context.Unsupported($"{values.Length} weight zero points for {channels} output channels");
        return values;
    }

    /// <summary>
    /// The output stage for <paramref name="channels"/> output channels: requantizing when y_scale is given, float otherwise,
    /// with <paramref name="alpha"/> scaling the product and <paramref name="beta"/> the bias (Gemm; 1 for Conv and MatMul).
    /// </summary>
    public static QuantizedOutputStage Stage(OperatorBuildContext context, int channels, float alpha = 1f, float beta = 1f)
    {
        float sx = Scales(context, XScale, "x_scale")[0];
        float[] sw = Scales(context, WScale, "w_scale");
        if (sw.Length != 1 && sw.Length != channels) throw context.Unsupported($"{sw.Length} weight scales for {channels} output channels");
        var realScale = new float[channels];
        for (int m = 0; m < channels; m++) realScale[m] = sx * sw[sw.Length == 1 ? 0 : m];

        int[] intBias = [];
        float[] floatBias = [];
        if (context.HasInput(Bias))
        {
            var bias = context.TakeConstantInput(Bias) ?? throw context.Unsupported("the bias must be constant");
            if (bias.Length != 1 && bias.Length != channels) throw context.Unsupported($"a bias of {bias.Length} values for {channels} output channels");
            if (bias.ElementType == TensorElementType.Float32)
            {
                floatBias = Broadcast(bias.ToArray<float>(), channels, v => beta * v);
            }
            else
            {
                var values = QuantizationInputs.ZeroPoints(bias, context.Label); // the integers, widened
                float[] sb = Scales(context, BiasScale, "the bias scale");
                int[] zb = context.HasInput(BiasZeroPoint)
                    ? QuantizationInputs.ZeroPoints(context.TakeConstantInput(BiasZeroPoint) ?? throw context.Unsupported("the bias zero point must be constant"), context.Label)
                    : [];
                if (sb.Length != 1 && sb.Length != bias.Length) throw context.Unsupported($"{sb.Length} bias scales for {bias.Length} values");
                if (zb.Length != 0 && zb.Length != sb.Length) throw context.Unsupported($"{zb.Length} bias zero points for {sb.Length} scales");
                float Scale(int m) => sb[sb.Length == 1 ? 0 : m];
                int Zero(int m) => zb.Length == 0 ? 0 : zb[zb.Length == 1 ? 0 : m];
                // Exact in integers when the bias is in units of the accumulator (scale sx x sw[m], zero point 0), as quantizers write it.
                bool exact = alpha == 1f && beta == 1f && bias.ElementType == TensorElementType.Int32
                    && Enumerable.Range(0, bias.Length).All(m => Zero(m) == 0 && Scale(m) == realScale[bias.Length == 1 ? 0 : m])
                    && (bias.Length == channels || sw.Length == 1);
                if (exact)
                {
                    intBias = bias.Length == channels ? values : Enumerable.Repeat(values[0], channels).ToArray();
                }
                else
                {
                    int n = bias.Length;
                    floatBias = new float[channels];
                    for (int m = 0; m < channels; m++)
                    {
                        int i = n == 1 ? 0 : m;
                        floatBias[m] = beta * Quantization.DequantizeLinear.DequantizeScalar(values[i], Scale(i), Zero(i));
                    }
                }
            }
        }
        if (alpha != 1f)
        {
            for (int m = 0; m < channels; m++) realScale[m] *= alpha;
        }

        float clipMin = context.Float("clip_min", float.NegativeInfinity), clipMax = context.Float("clip_max", float.PositiveInfinity);
        if (!context.HasInput(YScale)) return QuantizedOutputStage.Dequantizing(realScale, intBias, floatBias, clipMin, clipMax);

        float sy = Scales(context, YScale, "y_scale") is [var s] ? s : throw context.Unsupported("the output must be quantized per tensor");
        TensorElementType type = TensorElementType.UInt8;
        int zy = 0;
        if (context.HasInput(YZeroPoint))
        {
            var zp = context.TakeConstantInput(YZeroPoint) ?? throw context.Unsupported("y_zero_point must be constant");
            if (zp.Length != 1) throw context.Unsupported("the output must be quantized per tensor");
            type = zp.ElementType;
            zy = QuantizationInputs.ZeroPoints(zp, context.Label)[0];
        }
        else if (context.Int("output_dtype", 0) is var dtype and not 0)
        {
            type = OnnxElementTypes.ToElementType((int)dtype);
        }
        if (type is not (TensorElementType.UInt8 or TensorElementType.Int8)) throw context.Unsupported($"a {type.DisplayName()} output (8-bit only)");
        return QuantizedOutputStage.Requantizing(type, realScale, intBias, floatBias, sy, zy, clipMin, clipMax);
    }

    private static float[] Scales(OperatorBuildContext context, int index, string what)
    {
        var scale = context.TakeConstantInput(index) ?? throw context.Unsupported($"{what} must be constant");
        if (scale.ElementType != TensorElementType.Float32) throw context.Unsupported($"{what} must be float32");
        return scale.ToArray<float>();
    }

    private static float[] Broadcast(float[] values, int channels, Func<float, float> map)
    {
        var result = new float[channels];
        for (int m = 0; m < channels; m++) result[m] = map(values[values.Length == 1 ? 0 : m]);
        return result;
    }
}

/// <summary>The per-tensor quantization inputs of the fused elementwise QDQ nodes.</summary>
internal static class ElementwiseQdq
{
    /// <summary>The constant scale at <paramref name="index"/> and the zero point after it (type null when absent).</summary>
    public static (float Scale, int ZeroPoint, TensorElementType? Type) Read(OperatorBuildContext context, int index)
    {
        var scale = context.TakeConstantInput(index) ?? throw context.Unsupported("the scales must be constant");
        if (scale.ElementType != TensorElementType.Float32 || scale.Length != 1) throw context.Unsupported("the scales must be one float32 each");
        if (!context.HasInput(index + 1)) return (scale.ToArray<float>()[0], 0, null);
        var zp = context.TakeConstantInput(index + 1) ?? throw context.Unsupported("the zero points must be constant");
        if (zp.Length != 1 || zp.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8)) throw context.Unsupported("the zero points must be one 8-bit value each");
        return (scale.ToArray<float>()[0], QuantizationInputs.ZeroPoints(zp, context.Label)[0], zp.ElementType);
    }

    /// <summary>The output type a QuantizeLinear without a zero point writes: its output_dtype, or uint8.</summary>
    public static TensorElementType OutputType(OperatorBuildContext context)
    {
        long dtype = context.Int("output_dtype", 0);
        var type = dtype == 0 ? TensorElementType.UInt8 : Models.Onnx.OnnxElementTypes.ToElementType((int)dtype);
        if (type is not (TensorElementType.UInt8 or TensorElementType.Int8)) throw context.Unsupported($"a {type.DisplayName()} output (8-bit only)");
        return type;
    }

    public static void CheckInput(Tensor x, TensorElementType? expected, string node)
    {
        if (x.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8) || (expected is { } type && x.ElementType != type))
            throw new InvalidOperationException($"{node}: the input is {x.ElementType.DisplayName()}, but its zero point is {expected?.DisplayName() ?? "8-bit"}.");
    }

    /// <summary>For each stored byte v: QuantizeLinear(DequantizeLinear(v)) as ONNX computes them, as a stored byte.</summary>
    public static byte[] Requantization(float scale, int zeroPoint, bool signed, float outputScale, int outputZeroPoint, TensorElementType outputType)
    {
        var range = QuantizedRange.Of(outputType);
        var table = new byte[256];
        for (int raw = 0; raw < 256; raw++)
        {
            float value = DequantizeLinear.DequantizeScalar(signed ? (sbyte)raw : raw, scale, zeroPoint);
            table[raw] = (byte)QuantizeLinear.QuantizeScalar(value, outputScale, outputZeroPoint, range.Min, range.Max);
        }
        return table;
    }

    public static bool IsIdentity(byte[] table)
    {
        for (int i = 0; i < table.Length; i++)
        {
            if (table[i] != i) return false;
        }
        return true;
    }
}
