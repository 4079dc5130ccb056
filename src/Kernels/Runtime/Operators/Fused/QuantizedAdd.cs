using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Quantize.Kernels.Models;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// DequantizeLinear(a) + DequantizeLinear(b) [-> Relu | Clip] -> QuantizeLinear in one pass over the 8-bit values (see
/// <see cref="Planning.QdqElementwiseFusion"/>): inputs <c>a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
/// y_zero_point</c>; attributes <c>clip_min</c>/<c>clip_max</c> (the activation) and <c>output_dtype</c>. Each element goes
/// through the float32 steps the unfused nodes take, <c>(a - za) sa + (b - zb) sb</c>, clamped, divided by the output
/// scale and rounded half to even, so the result is the same; a and b broadcast as Add's inputs do.
/// </summary>
[OnnxOperator("QuantizedAdd", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class QuantizedAdd(
    (float Scale, int ZeroPoint, TensorElementType? Type) a, (float Scale, int ZeroPoint, TensorElementType? Type) b,
    float outputScale, int outputZeroPoint, TensorElementType outputType, float clipMin, float clipMax) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var a = ElementwiseQdq.Read(context, 1);
        var b = ElementwiseQdq.Read(context, 4);
        var y = ElementwiseQdq.Read(context, 6);
        return new QuantizedAdd(a, b, y.Scale, y.ZeroPoint, y.Type ?? ElementwiseQdq.OutputType(context),
            context.Float("clip_min", float.NegativeInfinity), context.Float("clip_max", float.PositiveInfinity));
    }

    public override void Run(OperatorCall call)
    {
        var x0 = call.Input(0);
        var x1 = call.Input(3);
        string node = call.Context.Node;
        ElementwiseQdq.CheckInput(x0, a.Type, node);
        ElementwiseQdq.CheckInput(x1, b.Type, node);
        var shape = Broadcast.Shape(x0.Shape, x1.Shape, node);
        var y = call.Output(0, outputType, shape);
        var range = QuantizedRange.Of(outputType);
        var parameters = new Parameters(a.Scale, a.ZeroPoint, x0.ElementType == TensorElementType.Int8, b.Scale, b.ZeroPoint, x1.ElementType == TensorElementType.Int8,
            clipMin, clipMax, outputScale, outputZeroPoint, range.Min, range.Max);
        Broadcast.ForEachRun(shape, [Broadcast.Strides(x0.Shape, shape), Broadcast.Strides(x1.Shape, shape)], (start, length, offsets, advancing) =>
        {
            var first = QuantizationInputs.Bytes(x0);
            var second = QuantizationInputs.Bytes(x1);
            var target = QuantizationInputs.Bytes(y).Slice(start, length);
            if (advancing[0] && advancing[1])
            {
                AddRun(parameters, first.Slice(offsets[0], length), second.Slice(offsets[1], length), target);
                return;
            }
            for (int i = 0; i < length; i++)
                target[i] = parameters.Scalar(first[offsets[0] + (advancing[0] ? i : 0)], second[offsets[1] + (advancing[1] ? i : 0)]);
        });
    }

    private readonly record struct Parameters(float ScaleA, int ZeroA, bool SignedA, float ScaleB, int ZeroB, bool SignedB,
        float ClipMin, float ClipMax, float ScaleY, int ZeroY, int Min, int Max)
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public byte Scalar(byte rawA, byte rawB)
        {
            float sum = DequantizeLinear.DequantizeScalar(SignedA ? (sbyte)rawA : rawA, ScaleA, ZeroA)
                + DequantizeLinear.DequantizeScalar(SignedB ? (sbyte)rawB : rawB, ScaleB, ZeroB);
            sum = Math.Min(Math.Max(sum, ClipMin), ClipMax);
            return (byte)QuantizeLinear.QuantizeScalar(sum, ScaleY, ZeroY, Min, Max);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AddRun(in Parameters p, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, Span<byte> target)
    {
        int i = 0, n = target.Length;
        if (Vector256.IsHardwareAccelerated && n >= 16)
        {
            ref byte a = ref MemoryMarshal.GetReference(first);
            ref byte b = ref MemoryMarshal.GetReference(second);
            ref byte y = ref MemoryMarshal.GetReference(target);
            var (za, sa, zb, sb) = (Vector256.Create((float)p.ZeroA), Vector256.Create(p.ScaleA), Vector256.Create((float)p.ZeroB), Vector256.Create(p.ScaleB));
            var (lo, hi, sy, zy) = (Vector256.Create(p.ClipMin), Vector256.Create(p.ClipMax), Vector256.Create(p.ScaleY), Vector256.Create((float)p.ZeroY));
            var (min, max) = (Vector256.Create((float)p.Min), Vector256.Create((float)p.Max));
            for (; i + 16 <= n; i += 16)
            {
                var (a0, a1) = Widen(Vector128.LoadUnsafe(ref a, (nuint)i), p.SignedA);
                var (b0, b1) = Widen(Vector128.LoadUnsafe(ref b, (nuint)i), p.SignedB);
                var q0 = Requantize((Vector256.ConvertToSingle(a0) - za) * sa + (Vector256.ConvertToSingle(b0) - zb) * sb, lo, hi, sy, zy, min, max);
                var q1 = Requantize((Vector256.ConvertToSingle(a1) - za) * sa + (Vector256.ConvertToSingle(b1) - zb) * sb, lo, hi, sy, zy, min, max);
                // Within the 8-bit range already: narrowing keeps the low bytes (int8 as two's complement).
                var shorts = Vector256.Narrow(q0, q1);
                Vector128.Narrow(shorts.GetLower(), shorts.GetUpper()).AsByte().StoreUnsafe(ref y, (nuint)i);
            }
        }
        for (; i < n; i++) target[i] = p.Scalar(first[i], second[i]);
    }

    /// <summary>The steps of <see cref="QuantizeLinear.QuantizeScalar"/>: clamp (the activation), divide, round half to even, add the zero point, saturate.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Requantize(Vector256<float> sum, Vector256<float> lo, Vector256<float> hi, Vector256<float> scale, Vector256<float> zeroPoint,
        Vector256<float> min, Vector256<float> max)
    {
        sum = Vector256.Min(Vector256.Max(sum, lo), hi);
        var rounded = Vector256.Round(sum / scale) + zeroPoint;
        return Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(rounded, min), max));
    }

    /// <summary>16 stored bytes as two vectors of 8 ints.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<int> Lower, Vector256<int> Upper) Widen(Vector128<byte> raw, bool signed)
    {
        if (signed)
        {
            var (lo, hi) = Vector128.Widen(raw.AsSByte());
            return Vector256.Widen(Vector256.Create(lo, hi));
        }
        var (ulo, uhi) = Vector128.Widen(raw);
        var (l, h) = Vector256.Widen(Vector256.Create(ulo, uhi));
        return (l.AsInt32(), h.AsInt32());
    }
}
