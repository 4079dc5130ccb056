using Quantize.Kernels.Quantization;

namespace Quantize.Core.Quantization;

/// <summary>
/// A float weight <c>[K, N]</c> quantized to 4 bits in blocks of <see cref="BlockSize"/> consecutive values along K,
/// one scale and zero point per (column, block): <c>w = (code - zeroPoint) * scale</c> with codes and zero points in
/// 0..15. The last block of a column is padded with its zero point when K is not a multiple of the block size.
/// The two writers lay the same numbers out for <c>com.microsoft</c> MatMulNBits and for ONNX's blocked
/// DequantizeLinear (signed int4: code - 8), so both formats hold the same weights.
/// </summary>
internal sealed class Int4Blocks
{
    private const int Levels = 15; // codes 0..15
    private const int Middle = 8;  // the zero point of a symmetric block; int4 = code - 8

    private readonly byte[] _codes;        // [N, blocks * blockSize], column n's codes along K
    private readonly float[] _scales;      // [N, blocks]
    private readonly byte[] _zeroPoints;   // [N, blocks]

    private Int4Blocks(int depth, int columns, int blockSize, byte[] codes, float[] scales, byte[] zeroPoints)
    {
        Depth = depth;
        Columns = columns;
        BlockSize = blockSize;
        _codes = codes;
        _scales = scales;
        _zeroPoints = zeroPoints;
    }

    /// <summary>K.</summary>
    public int Depth { get; }

    /// <summary>N.</summary>
    public int Columns { get; }

    /// <summary>Values per block along K.</summary>
    public int BlockSize { get; }

    /// <summary>Blocks per column: ceil(K / block size).</summary>
    public int BlocksPerColumn => (Depth + BlockSize - 1) / BlockSize;

    /// <summary>Quantizes the row-major <c>[depth, columns]</c> <paramref name="weight"/> (finite values).</summary>
    public static Int4Blocks Quantize(ReadOnlySpan<float> weight, int depth, int columns, int blockSize, bool symmetric)
    {
        if (weight.Length != (long)depth * columns) throw new ArgumentException($"A [{depth}, {columns}] weight needs {(long)depth * columns} values, not {weight.Length}.", nameof(weight));
        int blocks = (depth + blockSize - 1) / blockSize;
        var codes = new byte[(long)columns * blocks * blockSize];
        var scales = new float[columns * blocks];
        var zeroPoints = new byte[columns * blocks];
        var range = new QuantizedRange(0, Levels);
        var block = new float[blockSize];
        for (int n = 0; n < columns; n++)
        {
            for (int b = 0; b < blocks; b++)
            {
                int start = b * blockSize, length = Math.Min(blockSize, depth - start);
                for (int i = 0; i < length; i++) block[i] = weight[(start + i) * columns + n];
                var values = block.AsSpan(0, length);
                var parameters = symmetric ? SymmetricParameters(values) : AsymmetricParameters(values, range);
                scales[n * blocks + b] = parameters.Scale;
                zeroPoints[n * blocks + b] = (byte)parameters.ZeroPoint;
                var target = codes.AsSpan(n * blocks * blockSize + start, blockSize);
                for (int i = 0; i < length; i++) target[i] = (byte)parameters.Quantize(values[i], range);
                target[length..].Fill((byte)parameters.ZeroPoint); // padding dequantizes to 0
            }
        }
        return new Int4Blocks(depth, columns, blockSize, codes, scales, zeroPoints);
    }

    /// <summary>
    /// The symmetric block: the value of largest magnitude, m, maps exactly onto code 0 (int4 -8) with
    /// <c>scale = m / -8</c> (negative when m is positive), so the block uses all 16 levels with a step of |m| / 8;
    /// values of the other sign beyond 7 steps are clipped. This is the rule of ONNX Runtime's blockwise quantizer.
    /// The alternative, <c>|m| / 7</c> over -7..7, never clips but its step is 8/7 as large: on all-MiniLM-L6-v2's
    /// MatMul weights (block 32) the full-range rule's squared reconstruction error is 0.78 of the |m|/7 rule's
    /// (Int4MiniLMTests measures it), since few values sit near the clipped extreme and all gain from the finer step.
    /// </summary>
    private static QuantizationParameters SymmetricParameters(ReadOnlySpan<float> values)
    {
        float min = 0, max = 0;
        foreach (float v in values)
        {
            min = MathF.Min(min, v);
            max = MathF.Max(max, v);
        }
        float extreme = max > -min ? max : min;
        float scale = extreme / -Middle;
        // An all-zero block (or one whose scale underflows) keeps scale 1: every code is 8, every value 0.
        return new QuantizationParameters(scale == 0 ? 1f : scale, Middle);
    }

    /// <summary>The block's [min, max] widened to hold 0, over codes 0..15 (0 is exactly the zero point).</summary>
    private static QuantizationParameters AsymmetricParameters(ReadOnlySpan<float> values, QuantizedRange range)
    {
        float min = 0, max = 0;
        foreach (float v in values)
        {
            min = MathF.Min(min, v);
            max = MathF.Max(max, v);
        }
        var parameters = QuantizationParameters.FromRange(min, max, range, symmetric: false);
        return parameters.Scale == 0 ? new QuantizationParameters(1f, parameters.ZeroPoint) : parameters;
    }

    /// <summary>MatMulNBits input B: uint8 <c>[N, blocks, blockSize / 2]</c>, two codes per byte along K, low nibble first.</summary>
    public byte[] MatMulNBitsWeights()
    {
        var packed = new byte[_codes.Length / 2];
        Int4Packing.Pack(_codes, packed);
        return packed;
    }

    /// <summary>MatMulNBits scales (and DequantizeLinear's, transposed): float <c>[N, blocks]</c>.</summary>
    public float[] MatMulNBitsScales() => (float[])_scales.Clone();

    /// <summary>MatMulNBits zero points: uint8 <c>[N, ceil(blocks / 2)]</c>, two per byte along the blocks, low nibble first.</summary>
    public byte[] MatMulNBitsZeroPoints()
    {
        int blocks = BlocksPerColumn, perColumn = Int4Packing.PackedLength(blocks);
        var packed = new byte[Columns * perColumn];
        for (int n = 0; n < Columns; n++)
            Int4Packing.Pack(_zeroPoints.AsSpan(n * blocks, blocks), packed.AsSpan(n * perColumn, perColumn));
        return packed;
    }

    /// <summary>DequantizeLinear's data: int4 <c>[K, N]</c> (code - 8), packed per the ONNX TensorProto rule (row-major, low nibble first).</summary>
    public byte[] Int4Values()
    {
        int blocks = BlocksPerColumn;
        var values = new sbyte[(long)Depth * Columns];
        for (int k = 0; k < Depth; k++)
        {
            for (int n = 0; n < Columns; n++) values[k * Columns + n] = (sbyte)(_codes[n * blocks * BlockSize + k] - Middle);
        }
        var packed = new byte[Int4Packing.PackedLength(values.Length)];
        Int4Packing.Pack(values, packed);
        return packed;
    }

    /// <summary>DequantizeLinear's scales: float <c>[blocks, N]</c>.</summary>
    public float[] BlockRowScales() => Transpose(_scales, Columns, BlocksPerColumn);

    /// <summary>DequantizeLinear's zero points: int4 <c>[blocks, N]</c> (zero point - 8), packed row-major.</summary>
    public byte[] Int4ZeroPoints()
    {
        int blocks = BlocksPerColumn;
        var values = new sbyte[blocks * Columns];
        for (int b = 0; b < blocks; b++)
        {
            for (int n = 0; n < Columns; n++) values[b * Columns + n] = (sbyte)(_zeroPoints[n * blocks + b] - Middle);
        }
        var packed = new byte[Int4Packing.PackedLength(values.Length)];
        Int4Packing.Pack(values, packed);
        return packed;
    }

    private static float[] Transpose(float[] source, int rows, int columns)
    {
        var result = new float[source.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++) result[c * rows + r] = source[r * columns + c];
        }
        return result;
    }
}
