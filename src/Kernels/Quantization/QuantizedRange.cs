using Quantize.Kernels.Models;

namespace Quantize.Kernels.Quantization;

/// <summary>The integer range a quantized value may take: <c>[Min, Max]</c>.</summary>
/// <param name="Min">The smallest quantized value.</param>
/// <param name="Max">The largest quantized value.</param>
public readonly record struct QuantizedRange(int Min, int Max)
{
    /// <summary>The number of steps between <see cref="Min"/> and <see cref="Max"/>.</summary>
    public int Steps => Max - Min;

    /// <summary>
    /// The range of an integer type. <paramref name="narrow"/> drops the most negative value of a signed
    /// type (int8 becomes -127..127, so that negation stays in range and s8 x s8 products fit the
    /// AVX2 path); <paramref name="reduced"/> keeps one bit fewer (7-bit int8/uint8, for CPUs whose
    /// u8 x s8 instructions saturate).
    /// </summary>
    /// <exception cref="ArgumentException">The type is not a quantized integer type.</exception>
    public static QuantizedRange Of(TensorElementType type, bool narrow = false, bool reduced = false)
    {
        var (min, max, bits, signed) = type switch
        {
            TensorElementType.Int8 => (-128, 127, 8, true),
            TensorElementType.UInt8 => (0, 255, 8, false),
            TensorElementType.Int16 => (-32768, 32767, 16, true),
            TensorElementType.UInt16 => (0, 65535, 16, false),
            TensorElementType.Int4 => (-8, 7, 4, true),
            TensorElementType.UInt4 => (0, 15, 4, false),
            _ => throw new ArgumentException($"{type.DisplayName()} is not a quantized integer type.", nameof(type)),
        };
        if (reduced)
        {
            // One bit fewer: int8 -> -64..63, uint8 -> 0..127 (as ONNX Runtime's reduce_range).
            bits--;
            (min, max) = signed ? (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) : (0, (1 << bits) - 1);
        }
        if (narrow && signed) min = -max;
        return new QuantizedRange(min, max);
    }
}
