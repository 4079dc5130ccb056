using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>Reads the scale and zero-point inputs of quantization operators into plain arrays.</summary>
internal static class QuantizationInputs
{
    /// <summary>Scales as float32 (float16 and bfloat16 scales widened).</summary>
    public static float[] Scales(Tensor scale, string node) => scale.ElementType switch
    {
        TensorElementType.Float32 => scale.ToArray<float>(),
        TensorElementType.Float16 => scale.ToArray<Half>().Select(h => (float)h).ToArray(),
        TensorElementType.BFloat16 => scale.ToArray<ushort>().Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray(),
        _ => throw new NotSupportedException($"{node}: scales of {scale.ElementType.DisplayName()} are not supported."),
    };

    /// <summary>Zero points widened to int (empty when absent).</summary>
    public static int[] ZeroPoints(Tensor? zeroPoint, string node) => zeroPoint is null ? [] : zeroPoint.ElementType switch
    {
        TensorElementType.Int8 or TensorElementType.Int4 => zeroPoint.ToArray<sbyte>().Select(v => (int)v).ToArray(),
        TensorElementType.UInt8 or TensorElementType.UInt4 => zeroPoint.ToArray<byte>().Select(v => (int)v).ToArray(),
        TensorElementType.Int16 => zeroPoint.ToArray<short>().Select(v => (int)v).ToArray(),
        TensorElementType.UInt16 => zeroPoint.ToArray<ushort>().Select(v => (int)v).ToArray(),
        TensorElementType.Int32 => zeroPoint.ToArray<int>(),
        _ => throw new NotSupportedException($"{node}: zero points of {zeroPoint.ElementType.DisplayName()} are not supported."),
    };

    /// <summary>True for the integer types QuantizeLinear/DequantizeLinear run here (float8 and 2-bit types are not).</summary>
    public static bool IsSupportedQuantizedType(TensorElementType type) => type is TensorElementType.Int8 or TensorElementType.UInt8
        or TensorElementType.Int16 or TensorElementType.UInt16 or TensorElementType.Int4 or TensorElementType.UInt4;

    /// <summary>The raw storage bytes of a tensor whose elements are one or two bytes wide.</summary>
    public static Span<byte> Bytes(Tensor tensor) => tensor.Buffer.Data switch
    {
        byte[] b => b.AsSpan(0, tensor.Length),
        sbyte[] s => System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.AsSpan(0, tensor.Length)),
        short[] s => System.Runtime.InteropServices.MemoryMarshal.AsBytes(s.AsSpan(0, tensor.Length)),
        ushort[] u => System.Runtime.InteropServices.MemoryMarshal.AsBytes(u.AsSpan(0, tensor.Length)),
        int[] i => System.Runtime.InteropServices.MemoryMarshal.AsBytes(i.AsSpan(0, tensor.Length)),
        _ => throw new NotSupportedException($"{tensor} has no byte view."),
    };

    public static long[] LongShape(Tensor tensor) => tensor.ShapeArray.Select(d => (long)d).ToArray();

    /// <summary>The float32 view of a float input, widening float16.</summary>
    public static ReadOnlySpan<float> Floats(Tensor x, string node) => x.ElementType switch
    {
        TensorElementType.Float32 => x.AsSpan<float>(),
        TensorElementType.Float16 => x.ToArray<Half>().Select(h => (float)h).ToArray(),
        _ => throw new NotSupportedException($"{node}: {x.ElementType.DisplayName()} input is not supported here."),
    };
}
