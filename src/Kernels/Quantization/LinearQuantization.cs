using System.Runtime.InteropServices;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Quantization;

/// <summary>
/// QuantizeLinear and DequantizeLinear over whole tensors, with the three granularities ONNX
/// defines: per-tensor (one scale), per-axis (one scale per index of <c>axis</c>) and blocked (one
/// scale per <c>blockSize</c> consecutive indices of <c>axis</c>, the last block possibly shorter).
/// The tensor is split into runs that share parameters, and each run goes to the span kernels.
/// </summary>
public static class LinearQuantization
{
    /// <summary>
    /// Quantizes a float tensor to <paramref name="type"/> (int8, uint8, int16, uint16, int4, uint4),
    /// returning the packed little-endian bytes (two 4-bit values per byte, low nibble first).
    /// </summary>
    /// <param name="x">The values, row-major.</param>
    /// <param name="shape">The tensor's dimensions.</param>
    /// <param name="scales">One scale (per-tensor), <c>shape[axis]</c> scales (per-axis), or the blocked scale tensor (row-major, <c>shape</c> with <c>shape[axis]</c> replaced by the block count).</param>
    /// <param name="zeroPoints">Zero points laid out like <paramref name="scales"/>, or empty for 0.</param>
    /// <param name="axis">The quantization axis (negative counts from the end); ignored for per-tensor.</param>
    /// <param name="blockSize">0 for per-tensor or per-axis, else the block length along <paramref name="axis"/>.</param>
    /// <param name="type">The quantized element type.</param>
    /// <param name="range">The range to saturate to; default the whole type.</param>
    public static byte[] Quantize(ReadOnlySpan<float> x, ReadOnlySpan<long> shape, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints,
        int axis, int blockSize, TensorElementType type, QuantizedRange? range = null)
    {
        bool fourBit = type is TensorElementType.Int4 or TensorElementType.UInt4;
        var values = new byte[x.Length * (type is TensorElementType.Int16 or TensorElementType.UInt16 ? 2 : 1)];
        QuantizeUnpacked(x, shape, scales, zeroPoints, axis, blockSize, type, values, range);
        if (!fourBit) return values;
        var packed = new byte[Int4Packing.PackedLength(x.Length)];
        Int4Packing.Pack(values, packed);
        return packed;
    }

    /// <summary>
    /// Dequantizes a tensor of <paramref name="type"/> given as packed bytes (see <see cref="Quantize"/>
    /// for the parameter layouts) into float32.
    /// </summary>
    public static float[] Dequantize(ReadOnlySpan<byte> x, TensorElementType type, ReadOnlySpan<long> shape, ReadOnlySpan<float> scales,
        ReadOnlySpan<int> zeroPoints, int axis, int blockSize)
    {
        long count = TensorData.CountElements(shape);
        if (type.ByteCount(count) != x.Length)
            throw new ArgumentException($"A {type.DisplayName()} tensor of shape {TensorData.FormatShape(shape)} needs {type.ByteCount(count)} bytes, not {x.Length}.", nameof(x));
        var y = new float[count];
        if (type is TensorElementType.Int4 or TensorElementType.UInt4)
        {
            var values = new byte[count];
            if (type == TensorElementType.Int4) Int4Packing.Unpack(x, MemoryMarshal.Cast<byte, sbyte>(values.AsSpan()));
            else Int4Packing.Unpack(x, values);
            DequantizeUnpacked(values, type, shape, scales, zeroPoints, axis, blockSize, y);
        }
        else
        {
            DequantizeUnpacked(x, type, shape, scales, zeroPoints, axis, blockSize, y);
        }
        return y;
    }

    /// <summary>
    /// Quantizes into one storage unit per element, 4-bit values unpacked one per byte (the layout the
    /// runtime holds): <paramref name="destination"/> is x.Length bytes for 8- and 4-bit types, twice that for 16-bit.
    /// </summary>
    internal static void QuantizeUnpacked(ReadOnlySpan<float> x, ReadOnlySpan<long> shape, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints,
        int axis, int blockSize, TensorElementType type, Span<byte> destination, QuantizedRange? saturation = null)
    {
        var layout = Layout.Create(shape, x.Length, scales.Length, zeroPoints.Length, axis, blockSize);
        var range = saturation ?? QuantizedRange.Of(type);
        switch (type)
        {
            case TensorElementType.Int8 or TensorElementType.Int4:
                RunQuantize<sbyte, SByteStorage>(x, scales, zeroPoints, MemoryMarshal.Cast<byte, sbyte>(destination), range, layout);
                break;
            case TensorElementType.UInt8 or TensorElementType.UInt4:
                RunQuantize<byte, ByteStorage>(x, scales, zeroPoints, destination, range, layout);
                break;
            case TensorElementType.Int16:
                RunQuantize<short, Int16Storage>(x, scales, zeroPoints, MemoryMarshal.Cast<byte, short>(destination), range, layout);
                break;
            case TensorElementType.UInt16:
                RunQuantize<ushort, UInt16Storage>(x, scales, zeroPoints, MemoryMarshal.Cast<byte, ushort>(destination), range, layout);
                break;
            default:
                throw new ArgumentException($"QuantizeLinear to {type.DisplayName()} is not supported; use int8, uint8, int16, uint16, int4 or uint4.", nameof(type));
        }
    }

    /// <summary>Dequantizes values held one storage unit per element (4-bit unpacked) into <paramref name="destination"/>.</summary>
    internal static void DequantizeUnpacked(ReadOnlySpan<byte> x, TensorElementType type, ReadOnlySpan<long> shape, ReadOnlySpan<float> scales,
        ReadOnlySpan<int> zeroPoints, int axis, int blockSize, Span<float> destination)
    {
        int count = destination.Length;
        var layout = Layout.Create(shape, count, scales.Length, zeroPoints.Length, axis, blockSize);
        switch (type)
        {
            case TensorElementType.Int8 or TensorElementType.Int4:
                RunDequantize<sbyte, SByteStorage>(MemoryMarshal.Cast<byte, sbyte>(x), scales, zeroPoints, destination, layout);
                break;
            case TensorElementType.UInt8 or TensorElementType.UInt4:
                RunDequantize<byte, ByteStorage>(x, scales, zeroPoints, destination, layout);
                break;
            case TensorElementType.Int16:
                RunDequantize<short, Int16Storage>(MemoryMarshal.Cast<byte, short>(x), scales, zeroPoints, destination, layout);
                break;
            case TensorElementType.UInt16:
                RunDequantize<ushort, UInt16Storage>(MemoryMarshal.Cast<byte, ushort>(x), scales, zeroPoints, destination, layout);
                break;
            case TensorElementType.Int32:
            {
                // Per-axis too: quantized biases carry one scale per output channel (x_scale x w_scale[m]).
                var values = MemoryMarshal.Cast<byte, int>(x);
                foreach (var run in layout.Runs())
                {
                    for (int i = 0; i < run.Length; i++)
                    {
                        int p = run.Parameter + (run.Elementwise ? i : 0);
                        destination[run.Start + i] = DequantizeLinear.DequantizeScalar(values[run.Start + i], scales[p], zeroPoints.IsEmpty ? 0 : zeroPoints[p]);
                    }
                }
                break;
            }
            default:
                throw new ArgumentException($"DequantizeLinear from {type.DisplayName()} is not supported.", nameof(type));
        }
    }

    private static void RunQuantize<T, TStorage>(ReadOnlySpan<float> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<T> y, QuantizedRange range, Layout layout)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T>
    {
        int[] zeros = zeroPoints.IsEmpty ? new int[scales.Length] : [];
        ReadOnlySpan<int> zps = zeroPoints.IsEmpty ? zeros : zeroPoints;
        foreach (var run in layout.Runs())
        {
            var xs = x.Slice(run.Start, run.Length);
            var ys = y.Slice(run.Start, run.Length);
            if (run.Elementwise)
                QuantizeLinear.QuantizeElementwise<T, TStorage>(xs, scales.Slice(run.Parameter, run.Length), zps.Slice(run.Parameter, run.Length), ys, range, VectorWidth.Vector256);
            else
                QuantizeLinear.QuantizeUniform<T, TStorage>(xs, scales[run.Parameter], zps[run.Parameter], ys, range, VectorWidth.Vector256);
        }
    }

    private static void RunDequantize<T, TStorage>(ReadOnlySpan<T> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<float> y, Layout layout)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T>
    {
        int[] zeros = zeroPoints.IsEmpty ? new int[scales.Length] : [];
        ReadOnlySpan<int> zps = zeroPoints.IsEmpty ? zeros : zeroPoints;
        foreach (var run in layout.Runs())
        {
            var xs = x.Slice(run.Start, run.Length);
            var ys = y.Slice(run.Start, run.Length);
            if (run.Elementwise)
                DequantizeLinear.DequantizeElementwise<T, TStorage>(xs, scales.Slice(run.Parameter, run.Length), zps.Slice(run.Parameter, run.Length), ys, VectorWidth.Vector256);
            else
                DequantizeLinear.DequantizeUniform<T, TStorage>(xs, scales[run.Parameter], zps[run.Parameter], ys, VectorWidth.Vector256);
        }
    }

    /// <summary>A stretch of consecutive elements and where its parameters start.</summary>
    /// <param name="Start">First element.</param>
    /// <param name="Length">Element count.</param>
    /// <param name="Parameter">Index of the first scale/zero point used.</param>
    /// <param name="Elementwise">True if element k uses parameter <c>Parameter + k</c>; false if all use <c>Parameter</c>.</param>
    private readonly record struct ParameterRun(int Start, int Length, int Parameter, bool Elementwise);

    /// <summary>The tensor as [outer, axis, inner] and how its parameters are laid out over it.</summary>
    private readonly record struct Layout(int Outer, int AxisLength, int Inner, int BlockSize, bool PerTensor)
    {
        public static Layout Create(ReadOnlySpan<long> shape, int count, int scaleCount, int zeroPointCount, int axis, int blockSize)
        {
            if (TensorData.CountElements(shape) != count)
                throw new ArgumentException($"Shape {TensorData.FormatShape(shape)} does not hold {count} elements.", nameof(shape));
            if (scaleCount == 0) throw new ArgumentException("At least one scale is needed.", nameof(scaleCount));
            if (zeroPointCount != 0 && zeroPointCount != scaleCount)
                throw new ArgumentException($"{zeroPointCount} zero points do not match {scaleCount} scales.", nameof(zeroPointCount));
            if (scaleCount == 1 && blockSize == 0) return new Layout(1, 1, count, 0, PerTensor: true);

            int rank = shape.Length;
            if (axis < -rank || axis >= rank) throw new ArgumentException($"Axis {axis} is outside a rank-{rank} tensor.", nameof(axis));
            if (axis < 0) axis += rank;
            int outer = 1, inner = 1;
            for (int d = 0; d < axis; d++) outer *= (int)shape[d];
            for (int d = axis + 1; d < rank; d++) inner *= (int)shape[d];
            int axisLength = (int)shape[axis];
            if (blockSize < 0) throw new ArgumentException("The block size cannot be negative.", nameof(blockSize));
            if (blockSize == 0)
            {
                if (scaleCount != axisLength)
                    throw new ArgumentException($"Per-axis quantization along axis {axis} needs {axisLength} scales, not {scaleCount}.", nameof(scaleCount));
            }
            else
            {
                long blocks = (axisLength + blockSize - 1) / blockSize;
                if (scaleCount != outer * blocks * inner)
                    throw new ArgumentException($"Blocked quantization with block size {blockSize} along axis {axis} needs {outer * blocks * inner} scales, not {scaleCount}.", nameof(scaleCount));
            }
            return new Layout(outer, axisLength, inner, blockSize, PerTensor: false);
        }

        public IEnumerable<ParameterRun> Runs()
        {
            if (PerTensor)
            {
                yield return new ParameterRun(0, Inner, 0, false);
                yield break;
            }
            if (BlockSize == 0)
            {
                for (int o = 0; o < Outer; o++)
                {
                    int rowStart = o * AxisLength * Inner;
                    if (Inner == 1)
                    {
                        // Along the last axis every element has its own scale: one elementwise run per row.
                        yield return new ParameterRun(rowStart, AxisLength, 0, true);
                        continue;
                    }
                    for (int a = 0; a < AxisLength; a++)
                        yield return new ParameterRun(rowStart + a * Inner, Inner, a, false);
                }
                yield break;
            }

            int blocks = (AxisLength + BlockSize - 1) / BlockSize;
            for (int o = 0; o < Outer; o++)
            {
                int rowStart = o * AxisLength * Inner;
                if (Inner == 1)
                {
                    for (int b = 0; b < blocks; b++)
                    {
                        int start = b * BlockSize;
                        yield return new ParameterRun(rowStart + start, Math.Min(BlockSize, AxisLength - start), o * blocks + b, false);
                    }
                    continue;
                }
                for (int a = 0; a < AxisLength; a++)
                    yield return new ParameterRun(rowStart + a * Inner, Inner, (o * blocks + a / BlockSize) * Inner, true);
            }
        }
    }
}
