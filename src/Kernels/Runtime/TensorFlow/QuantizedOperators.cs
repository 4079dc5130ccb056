using Quantize.Kernels.Models;
using Quantize.Kernels.Quantization;
using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Runtime.TensorFlow;

/// <summary>Reads values of TensorFlow's quantized tensors (held as uint8, int8 or int32) and their float ranges.</summary>
internal static class QuantizedValues
{
    public static float Scalar(Tensor t) => t.AsSpan<float>()[0];

    public static long At(Tensor t, int index) => t.ElementType switch
    {
        TensorElementType.UInt8 => t.AsSpan<byte>()[index],
        TensorElementType.Int8 => t.AsSpan<sbyte>()[index],
        TensorElementType.Int32 => t.AsSpan<int>()[index],
        _ => throw new NotSupportedException($"{t.ElementType.DisplayName()} is not a quantized type the runtime supports."),
    };

    public static void ScalarOutput(OperatorCall call, int index, float value)
    {
        if (index >= call.OutputCount) return;
        call.Output(index, TensorElementType.Float32, []).AsSpan<float>()[0] = value;
    }

    /// <summary>The element of the smaller operand that pairs with element <paramref name="i"/> of the larger (TensorFlow's old quantized broadcasting: repeat the smaller).</summary>
    public static int Broadcast(int i, int length) => length == 0 ? 0 : i % length;
}

/// <summary>Dequantize in MIN_COMBINED, MIN_FIRST and SCALED modes (per tensor, or per channel along <c>axis</c> in SCALED).</summary>
[OnnxOperator("Dequantize", 1, GraphDefTranslator.Domain)]
internal sealed class DequantizeOperator(string mode, int axis, bool narrowRange) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        string mode = context.String("mode", "MIN_COMBINED");
        if (mode is not ("MIN_COMBINED" or "MIN_FIRST" or "SCALED")) throw context.Unsupported($"mode {mode}");
        return new DequantizeOperator(mode, (int)context.Int("axis", -1), context.Int("narrow_range", 0) != 0);
    }

    public override void Run(OperatorCall call)
    {
        var q = call.Input(0);
        var mins = call.Input(1).AsSpan<float>();
        var maxs = call.Input(2).AsSpan<float>();
        var kind = QuantizedKind.Of(q.ElementType);
        var y = call.Output(0, TensorElementType.Float32, q.ShapeArray);
        var output = y.AsSpan<float>();
        int channels = mins.Length;
        if (channels == 0 || maxs.Length != channels) throw new InvalidOperationException($"{call.Context.Node}: min and max must have the same, non-zero length.");
        int inner = 1;
        if (channels > 1)
        {
            if (axis < 0 || axis >= q.Rank || q.Shape[axis] != channels)
                throw new InvalidOperationException($"{call.Context.Node}: {channels} ranges do not match axis {axis} of {q}.");
            for (int d = axis + 1; d < q.Rank; d++) inner *= q.Shape[d];
        }
        if (channels == 1)
        {
            var (step, offset) = Parameters(kind, mins[0], maxs[0]);
            for (int i = 0; i < q.Length; i++) output[i] = offset + QuantizedValues.At(q, i) * step;
        }
        if (channels > 1)
        {
            var parameters = new (float Step, float Offset)[channels];
            for (int c = 0; c < channels; c++) parameters[c] = Parameters(kind, mins[c], maxs[c]);
            for (int i = 0; i < q.Length; i++)
            {
                var (step, offset) = parameters[i / inner % channels];
                output[i] = offset + QuantizedValues.At(q, i) * step;
            }
        }
    }

    /// <summary>Each mode as value = offset + q * step.</summary>
    private (float Step, float Offset) Parameters(QuantizedKind kind, float min, float max)
    {
        switch (mode)
        {
            case "MIN_COMBINED":
            {
                float step = (max - min) / (float)(kind.Highest - kind.Lowest);
                // Signed types are shifted by half the range first: q + 128 for qint8.
                float half = kind.Lowest < 0 ? (float)(kind.Highest - kind.Lowest + 1) / 2 : 0;
                return (step, min + half * step);
            }
            case "MIN_FIRST":
            {
                if (kind == QuantizedKind.UInt8) return TensorFlowQuantization.MinFirstStep(min, max);
                float step = (float)((max - min) / ((double)(kind.Highest - kind.Lowest)));
                float rounded = max == min ? min : MathF.Round(min / step, MidpointRounding.AwayFromZero) * step;
                return (step, rounded - kind.Lowest * step);
            }
            default:
            {
                if (kind.Lowest == 0) return (max / kind.Highest, 0);
                float scale = Math.Max(min / (narrowRange ? kind.Lowest + 1 : kind.Lowest), max / kind.Highest);
                return (scale, 0);
            }
        }
    }
}

/// <summary>QuantizeV2 to quint8 in MIN_FIRST (the eightbit graphs' mode) or MIN_COMBINED, widening the range as TensorFlow does.</summary>
[OnnxOperator("QuantizeV2", 1, GraphDefTranslator.Domain)]
internal sealed class QuantizeV2Operator(string mode, float ensureMinimumRange) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        string mode = context.String("mode", "MIN_COMBINED");
        if (mode is not ("MIN_FIRST" or "MIN_COMBINED")) throw context.Unsupported($"mode {mode}");
        if (context.Int("T", 12) != 12) throw context.Unsupported("an output type other than quint8");
        return new QuantizeV2Operator(mode, context.Float("ensure_minimum_range", 0.01f));
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0).AsSpan<float>();
        float inputMin = QuantizedValues.Scalar(call.Input(1)), inputMax = QuantizedValues.Scalar(call.Input(2));
        float min = Math.Min(0f, inputMin);
        float epsilon = Math.Max(1f, Math.Max(Math.Abs(inputMin), Math.Abs(inputMax))) * ensureMinimumRange;
        float max = Math.Max(0f, Math.Max(inputMax, min + epsilon));
        var q = call.Output(0, TensorElementType.UInt8, call.Input(0).ShapeArray).AsSpan<byte>();
        if (mode == "MIN_FIRST")
        {
            // FloatToQuantizedStruct: float arithmetic, halves away from zero.
            float scale = min == max ? 0 : (float)(255.0 / ((double)max - min));
            float minScaled = MathF.Round(min * scale, MidpointRounding.AwayFromZero);
            for (int i = 0; i < x.Length; i++)
                q[i] = (byte)Math.Clamp(MathF.Round(x[i] * scale, MidpointRounding.AwayFromZero) - minScaled, 0f, 255f);
        }
        else
        {
            float scale = 255f / (max - min);
            for (int i = 0; i < x.Length; i++)
                q[i] = (byte)Math.Clamp(MathF.Round((Math.Clamp(x[i], min, max) - min) * scale, MidpointRounding.AwayFromZero), 0f, 255f);
        }
        QuantizedValues.ScalarOutput(call, 1, min);
        QuantizedValues.ScalarOutput(call, 2, max);
    }
}

/// <summary>QuantizedMatMul: the exact int32 sums of (a - a's zero) * (b - b's zero), with the product range.</summary>
[OnnxOperator("QuantizedMatMul", 1, GraphDefTranslator.Domain)]
internal sealed class QuantizedMatMulOperator(bool transposeA, bool transposeB) : Operator
{
    public static Operator Create(OperatorBuildContext context) =>
        new QuantizedMatMulOperator(context.Int("transpose_a", 0) != 0, context.Int("transpose_b", 0) != 0);

    public override void Run(OperatorCall call)
    {
        Tensor a = call.Input(0), b = call.Input(1);
        float minA = QuantizedValues.Scalar(call.Input(2)), maxA = QuantizedValues.Scalar(call.Input(3));
        float minB = QuantizedValues.Scalar(call.Input(4)), maxB = QuantizedValues.Scalar(call.Input(5));
        if (a.Rank != 2 || b.Rank != 2) throw new InvalidOperationException($"{call.Context.Node}: QuantizedMatMul takes matrices, not {a} and {b}.");
        int m = transposeA ? a.Shape[1] : a.Shape[0], k = transposeA ? a.Shape[0] : a.Shape[1];
        int kb = transposeB ? b.Shape[1] : b.Shape[0], n = transposeB ? b.Shape[0] : b.Shape[1];
        if (k != kb) throw new InvalidOperationException($"{call.Context.Node}: inner dimensions {k} and {kb} differ.");
        long zeroA = QuantizedKind.Of(a.ElementType).ToQuantizedUnclamped(0, minA, maxA);
        long zeroB = QuantizedKind.Of(b.ElementType).ToQuantizedUnclamped(0, minB, maxB);
        var c = call.Output(0, TensorElementType.Int32, [m, n]).AsSpan<int>();
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                long sum = 0;
                for (int p = 0; p < k; p++)
                {
                    long va = QuantizedValues.At(a, transposeA ? p * m + i : i * k + p) - zeroA;
                    long vb = QuantizedValues.At(b, transposeB ? j * k + p : p * n + j) - zeroB;
                    sum += va * vb;
                }
                c[i * n + j] = (int)sum;
            }
        }
        var (min, max) = QuantizedKind.ProductRange(minA, maxA, minB, maxB);
        QuantizedValues.ScalarOutput(call, 1, min);
        QuantizedValues.ScalarOutput(call, 2, max);
    }
}

/// <summary>QuantizedConv2D (NHWC, HWIO filter): int32 sums of (x - x's zero) * (w - w's zero); padding contributes zero.</summary>
[OnnxOperator("QuantizedConv2D", 1, GraphDefTranslator.Domain)]
internal sealed class QuantizedConv2DOperator(int[] strides, int[] dilations, bool same) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        long[] strides = context.Ints("strides") ?? [1, 1, 1, 1];
        long[] dilations = context.Ints("dilations") ?? [1, 1, 1, 1];
        if (strides.Length != 4 || dilations.Length != 4) throw context.Unsupported("strides and dilations must have 4 values");
        return new QuantizedConv2DOperator([(int)strides[1], (int)strides[2]], [(int)dilations[1], (int)dilations[2]], context.String("padding", "VALID") == "SAME");
    }

    public override void Run(OperatorCall call)
    {
        Tensor x = call.Input(0), w = call.Input(1);
        float minX = QuantizedValues.Scalar(call.Input(2)), maxX = QuantizedValues.Scalar(call.Input(3));
        float minW = QuantizedValues.Scalar(call.Input(4)), maxW = QuantizedValues.Scalar(call.Input(5));
        long zeroX = QuantizedKind.Of(x.ElementType).ToQuantizedUnclamped(0, minX, maxX);
        long zeroW = QuantizedKind.Of(w.ElementType).ToQuantizedUnclamped(0, minW, maxW);
        int batch = x.Shape[0], channels = x.Shape[3], kh = w.Shape[0], kw = w.Shape[1], outChannels = w.Shape[3];
        var rows = new WindowAxis(x.Shape[1], kh, strides[0], dilations[0], same);
        var cols = new WindowAxis(x.Shape[2], kw, strides[1], dilations[1], same);
        var xs = new long[x.Length];
        for (int i = 0; i < xs.Length; i++) xs[i] = QuantizedValues.At(x, i) - zeroX;
        var ws = new long[w.Length];
        for (int i = 0; i < ws.Length; i++) ws[i] = QuantizedValues.At(w, i) - zeroW;
        int depth = kh * kw * channels, pixels = batch * rows.Output * cols.Output;
        var patches = new long[Math.Max(1, pixels * depth)];
        Conv2DOperator.Im2Col<long>(xs, batch, channels, rows, cols, kh, kw, patches);
        var y = call.Output(0, TensorElementType.Int32, [batch, rows.Output, cols.Output, outChannels]).AsSpan<int>();
        for (int p = 0; p < pixels; p++)
        {
            for (int o = 0; o < outChannels; o++)
            {
                long sum = 0;
                for (int d = 0; d < depth; d++) sum += patches[p * depth + d] * ws[d * outChannels + o];
                y[p * outChannels + o] = (int)sum;
            }
        }
        var (min, max) = QuantizedKind.ProductRange(minX, maxX, minW, maxW);
        QuantizedValues.ScalarOutput(call, 1, min);
        QuantizedValues.ScalarOutput(call, 2, max);
    }
}

/// <summary>RequantizationRange: the float range the qint32 values actually use (its minimum no larger than 0).</summary>
[OnnxOperator("RequantizationRange", 1, GraphDefTranslator.Domain)]
internal sealed class RequantizationRangeOperator : Operator
{
    public static Operator Create(OperatorBuildContext context) => new RequantizationRangeOperator();

    public override void Run(OperatorCall call)
    {
        var values = call.Input(0).AsSpan<int>();
        float min = QuantizedValues.Scalar(call.Input(1)), max = QuantizedValues.Scalar(call.Input(2));
        int lo = int.MaxValue, hi = int.MinValue;
        foreach (int v in values)
        {
            lo = Math.Min(lo, v);
            hi = Math.Max(hi, v);
        }
        if (values.Length == 0) lo = hi = 0;
        QuantizedValues.ScalarOutput(call, 0, Math.Min(0f, (float)QuantizedKind.Int32.ToFloat(lo, min, max)));
        QuantizedValues.ScalarOutput(call, 1, (float)QuantizedKind.Int32.ToFloat(hi, min, max));
    }
}

/// <summary>Requantize: qint32 values re-expressed as quint8 in the requested range.</summary>
[OnnxOperator("Requantize", 1, GraphDefTranslator.Domain)]
internal sealed class RequantizeOperator : Operator
{
    public static Operator Create(OperatorBuildContext context) =>
        context.Int("out_type", 12) == 12 ? new RequantizeOperator() : throw context.Unsupported("an output type other than quint8");

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        var values = input.AsSpan<int>();
        float inMin = QuantizedValues.Scalar(call.Input(1)), inMax = QuantizedValues.Scalar(call.Input(2));
        float outMin = QuantizedValues.Scalar(call.Input(3)), outMax = QuantizedValues.Scalar(call.Input(4));
        var q = call.Output(0, TensorElementType.UInt8, input.ShapeArray).AsSpan<byte>();
        for (int i = 0; i < values.Length; i++)
        {
            double real = QuantizedKind.Int32.ToFloat(values[i], inMin, inMax);
            q[i] = (byte)QuantizedKind.UInt8.ToQuantized((float)real, outMin, outMax);
        }
        QuantizedValues.ScalarOutput(call, 1, outMin);
        QuantizedValues.ScalarOutput(call, 2, outMax);
    }
}

/// <summary>QuantizedRelu and QuantizedRelu6 on quint8: values below the quantized zero (above the quantized 6) are clamped; the range passes through.</summary>
[OnnxOperator("QuantizedRelu", 1, GraphDefTranslator.Domain)]
[OnnxOperator("QuantizedRelu6", 1, GraphDefTranslator.Domain)]
internal sealed class QuantizedReluOperator(bool six) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new QuantizedReluOperator(context.Node.OpType == "QuantizedRelu6");

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        float min = QuantizedValues.Scalar(call.Input(1)), max = QuantizedValues.Scalar(call.Input(2));
        var kind = QuantizedKind.Of(x.ElementType);
        long zero = kind.ToQuantized(0, min, max);
        long top = six ? kind.ToQuantized(6, min, max) : kind.Highest;
        var y = call.Output(0, x.ElementType, x.ShapeArray);
        if (x.ElementType == TensorElementType.UInt8)
        {
            var input = x.AsSpan<byte>();
            var output = y.AsSpan<byte>();
            for (int i = 0; i < input.Length; i++) output[i] = (byte)Math.Clamp(input[i], zero, top);
        }
        else
        {
            throw new NotSupportedException($"{call.Context.Node}: QuantizedRelu of {x.ElementType.DisplayName()} is not supported.");
        }
        QuantizedValues.ScalarOutput(call, 1, min);
        QuantizedValues.ScalarOutput(call, 2, max);
    }
}

/// <summary>
/// QuantizedAdd (both operands moved into a symmetric qint32 range of 2^17 times the largest input magnitude, then added)
/// and QuantizedMul ((x - x's zero) * (y - y's zero), the product range); the smaller operand repeats over the larger.
/// </summary>
[OnnxOperator("QuantizedAdd", 1, GraphDefTranslator.Domain)]
[OnnxOperator("QuantizedMul", 1, GraphDefTranslator.Domain)]
internal sealed class QuantizedBinaryOperator(bool add) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new QuantizedBinaryOperator(context.Node.OpType == "QuantizedAdd");

    public override void Run(OperatorCall call)
    {
        Tensor x = call.Input(0), y = call.Input(1);
        float minX = QuantizedValues.Scalar(call.Input(2)), maxX = QuantizedValues.Scalar(call.Input(3));
        float minY = QuantizedValues.Scalar(call.Input(4)), maxY = QuantizedValues.Scalar(call.Input(5));
        var larger = x.Length >= y.Length ? x : y;
        if (larger.Length > 0 && (x.Length == 0 || y.Length == 0 || larger.Length % Math.Min(x.Length, y.Length) != 0))
            throw new InvalidOperationException($"{call.Context.Node}: {x} and {y} cannot be broadcast.");
        var z = call.Output(0, TensorElementType.Int32, larger.ShapeArray).AsSpan<int>();
        QuantizedKind kindX = QuantizedKind.Of(x.ElementType), kindY = QuantizedKind.Of(y.ElementType);
        float outMin, outMax;
        if (add)
        {
            outMax = Math.Max(maxX, Math.Max(-minX, Math.Max(maxY, -minY))) * (1 << 17);
            outMin = -outMax;
            long zero = QuantizedKind.Int32.ToQuantized(0, outMin, outMax);
            for (int i = 0; i < z.Length; i++)
            {
                long a = QuantizedKind.Int32.ToQuantized(kindX.ToFloat(QuantizedValues.At(x, QuantizedValues.Broadcast(i, x.Length)), minX, maxX), outMin, outMax);
                long b = QuantizedKind.Int32.ToQuantized(kindY.ToFloat(QuantizedValues.At(y, QuantizedValues.Broadcast(i, y.Length)), minY, maxY), outMin, outMax);
                z[i] = (int)(a + b + zero);
            }
        }
        else
        {
            (outMin, outMax) = QuantizedKind.ProductRange(minX, maxX, minY, maxY);
            long zeroX = kindX.ToQuantizedUnclamped(0, minX, maxX), zeroY = kindY.ToQuantizedUnclamped(0, minY, maxY);
            for (int i = 0; i < z.Length; i++)
            {
                long a = QuantizedValues.At(x, QuantizedValues.Broadcast(i, x.Length)) - zeroX;
                long b = QuantizedValues.At(y, QuantizedValues.Broadcast(i, y.Length)) - zeroY;
                z[i] = (int)(a * b);
            }
        }
        QuantizedValues.ScalarOutput(call, 1, outMin);
        QuantizedValues.ScalarOutput(call, 2, outMax);
    }
}
