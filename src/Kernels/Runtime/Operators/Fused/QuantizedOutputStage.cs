using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Quantize.Kernels.Models;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// What a fused QDQ node does with the exact int32 sums <c>acc[m] = sum (x - zx)(w - zw[m])</c> of output channel m:
/// <list type="bullet">
/// <item>8-bit output (the float result went into QuantizeLinear): <c>clamp(round((acc + B[m]) x S[m] + O[m]) + zy, lo, hi)</c>
/// with <c>S[m] = sx x sw[m] / sy</c> in float32, as ONNX Runtime's QLinearConv requantizes; Relu or Clip before the
/// QuantizeLinear only raise <c>lo</c> and lower <c>hi</c> (quantizing is monotonic, so it commutes with clamping).</item>
/// <item>float output: <c>min(max((acc + B[m]) x S[m] + O[m], lo), hi)</c> with <c>S[m] = sx x sw[m]</c>.</item>
/// </list>
/// B is an int32 bias whose scale is exactly <c>sx x sw[m]</c> (added before scaling, exactly); O is any other bias, scaled.
/// </summary>
internal sealed class QuantizedOutputStage
{
    private readonly int[] _bias;
    private readonly float[] _scale;
    private readonly float[] _offset;
    private readonly float _floatMin, _floatMax;
    private readonly int _zeroPoint;

    private QuantizedOutputStage(TensorElementType outputType, int[] bias, float[] scale, float[] offset, float floatMin, float floatMax, int zeroPoint)
    {
        OutputType = outputType;
        _bias = bias;
        _scale = scale;
        _offset = offset;
        _floatMin = floatMin;
        _floatMax = floatMax;
        _zeroPoint = zeroPoint;
    }

    /// <summary>UInt8 or Int8 for a requantized output, Float32 otherwise.</summary>
    public TensorElementType OutputType { get; }

    /// <summary>A stage writing 8-bit values of <paramref name="type"/> with scale <paramref name="outputScale"/> and zero point <paramref name="zeroPoint"/>.</summary>
    /// <param name="type">UInt8 or Int8.</param>
    /// <param name="realScale">Per channel, <c>sx x sw[m]</c> (x alpha), the real value of one unit of the accumulator.</param>
    /// <param name="intBias">Per channel, the int32 bias added to the accumulator, or empty.</param>
    /// <param name="floatBias">Per channel, a real-valued bias, or empty.</param>
    /// <param name="outputScale">The QuantizeLinear's scale.</param>
    /// <param name="zeroPoint">The QuantizeLinear's zero point.</param>
    /// <param name="clipMin">The lower bound of a Relu/Clip before the QuantizeLinear (-inf without one).</param>
    /// <param name="clipMax">The upper bound of a Clip (+inf without one).</param>
    public static QuantizedOutputStage Requantizing(TensorElementType type, float[] realScale, int[] intBias, float[] floatBias, float outputScale, int zeroPoint,
        float clipMin, float clipMax)
    {
        var range = QuantizedRange.Of(type);
        int lo = QuantizeLinear.QuantizeScalar(clipMin, outputScale, zeroPoint, range.Min, range.Max);
        int hi = QuantizeLinear.QuantizeScalar(clipMax, outputScale, zeroPoint, range.Min, range.Max);
        int channels = realScale.Length;
        var scale = new float[channels];
        var offset = new float[channels];
        for (int m = 0; m < channels; m++)
        {
            scale[m] = realScale[m] / outputScale;
            offset[m] = floatBias.Length == 0 ? 0f : floatBias[m] / outputScale;
        }
        // Clamped relative to the zero point before rounding, so the float-to-int conversion never overflows.
        return new QuantizedOutputStage(type, Expand(intBias, channels), scale, offset, lo - zeroPoint, Math.Max(lo, hi) - zeroPoint, zeroPoint);
    }

    /// <summary>A stage writing float32 values, clamped to [<paramref name="clipMin"/>, <paramref name="clipMax"/>].</summary>
    public static QuantizedOutputStage Dequantizing(float[] realScale, int[] intBias, float[] floatBias, float clipMin, float clipMax) =>
        new(TensorElementType.Float32, Expand(intBias, realScale.Length), (float[])realScale.Clone(),
            floatBias.Length == 0 ? new float[realScale.Length] : (float[])floatBias.Clone(), clipMin, clipMax, 0);

    private static int[] Expand(int[] bias, int channels) => bias.Length == 0 ? new int[channels] : bias;

    /// <summary>
    /// Writes a tile of <paramref name="rows"/> x <paramref name="columns"/> sums (row-major, columns = channels
    /// <paramref name="firstChannel"/> onwards) row-major into <paramref name="output"/> (bytes for 8-bit stages, floats otherwise; row stride = columns).
    /// </summary>
    public void WriteRows(ReadOnlySpan<int> acc, int rows, int columns, int firstChannel, Span<byte> output)
    {
        for (int r = 0; r < rows; r++)
        {
            var sums = acc.Slice(r * columns, columns);
            if (OutputType == TensorElementType.Float32)
                ToFloat(sums, firstChannel, MemoryMarshal.Cast<byte, float>(output).Slice(r * columns, columns));
            else
                ToBytes(sums, firstChannel, output.Slice(r * columns, columns));
        }
    }

    /// <summary>Writes the sums of one channel (a depthwise plane) into <paramref name="output"/> (bytes or floats as the stage's type).</summary>
    public void WriteChannel(ReadOnlySpan<int> acc, int channel, Span<byte> output)
    {
        if (OutputType == TensorElementType.Float32)
        {
            var floats = MemoryMarshal.Cast<byte, float>(output);
            for (int i = 0; i < acc.Length; i++) floats[i] = Math.Min(Math.Max((acc[i] + _bias[channel]) * _scale[channel] + _offset[channel], _floatMin), _floatMax);
        }
        else
        {
            for (int i = 0; i < acc.Length; i++) output[i] = Requantize(acc[i], channel);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte Requantize(int acc, int channel)
    {
        float value = Math.Min(Math.Max((acc + _bias[channel]) * _scale[channel] + _offset[channel], _floatMin), _floatMax);
        return (byte)((int)MathF.Round(value, MidpointRounding.ToEven) + _zeroPoint); // int8 keeps its two's-complement byte
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ToBytes(ReadOnlySpan<int> sums, int firstChannel, Span<byte> output)
    {
        int n = sums.Length, j = 0;
        if (Vector256.IsHardwareAccelerated && n >= 32)
        {
            ref int s = ref MemoryMarshal.GetReference(sums);
            ref int b = ref _bias[firstChannel];
            ref float sc = ref _scale[firstChannel];
            ref float of = ref _offset[firstChannel];
            ref byte o = ref MemoryMarshal.GetReference(output);
            var lo = Vector256.Create(_floatMin);
            var hi = Vector256.Create(_floatMax);
            var zp = Vector256.Create(_zeroPoint);
            for (; j + 32 <= n; j += 32)
            {
                var v0 = Lane(ref s, ref b, ref sc, ref of, j, lo, hi, zp);
                var v1 = Lane(ref s, ref b, ref sc, ref of, j + 8, lo, hi, zp);
                var v2 = Lane(ref s, ref b, ref sc, ref of, j + 16, lo, hi, zp);
                var v3 = Lane(ref s, ref b, ref sc, ref of, j + 24, lo, hi, zp);
                // Values are already within the 8-bit range: narrowing keeps the low bytes.
                var bytes = Vector256.Narrow(Vector256.Narrow(v0, v1), Vector256.Narrow(v2, v3));
                bytes.AsByte().StoreUnsafe(ref o, (nuint)j);
            }
        }
        for (; j < n; j++) output[j] = Requantize(sums[j], firstChannel + j);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Lane(ref int sums, ref int bias, ref float scale, ref float offset, int j, Vector256<float> lo, Vector256<float> hi, Vector256<int> zp)
    {
        var acc = Vector256.LoadUnsafe(ref sums, (nuint)j) + Vector256.LoadUnsafe(ref bias, (nuint)j);
        var value = Vector256.ConvertToSingle(acc) * Vector256.LoadUnsafe(ref scale, (nuint)j) + Vector256.LoadUnsafe(ref offset, (nuint)j);
        value = Vector256.Min(Vector256.Max(value, lo), hi);
        return Vector256.ConvertToInt32(Vector256.Round(value)) + zp;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void ToFloat(ReadOnlySpan<int> sums, int firstChannel, Span<float> output)
    {
        int n = sums.Length, j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref int s = ref MemoryMarshal.GetReference(sums);
            ref int b = ref _bias[firstChannel];
            ref float sc = ref _scale[firstChannel];
            ref float of = ref _offset[firstChannel];
            ref float o = ref MemoryMarshal.GetReference(output);
            var lo = Vector256.Create(_floatMin);
            var hi = Vector256.Create(_floatMax);
            for (; j + 8 <= n; j += 8)
            {
                var acc = Vector256.LoadUnsafe(ref s, (nuint)j) + Vector256.LoadUnsafe(ref b, (nuint)j);
                var value = Vector256.ConvertToSingle(acc) * Vector256.LoadUnsafe(ref sc, (nuint)j) + Vector256.LoadUnsafe(ref of, (nuint)j);
                Vector256.Min(Vector256.Max(value, lo), hi).StoreUnsafe(ref o, (nuint)j);
            }
        }
        for (; j < n; j++)
        {
            int m = firstChannel + j;
            output[j] = Math.Min(Math.Max((sums[j] + _bias[m]) * _scale[m] + _offset[m], _floatMin), _floatMax);
        }
    }
}
