namespace Quantize.Kernels.Gemm;

/// <summary>
/// 4-bit block-quantized weights in ONNX Runtime's <c>com.microsoft.MatMulNBits</c> layout: for each of
/// the N output columns, K values in blocks of <see cref="BlockSize"/> along K, two unsigned 4-bit
/// values per byte (low nibble first), one float scale per (column, block) and a zero point per
/// (column, block), 8 when the model gives none. <c>W[n, k] = (q[n, k] - zp[n, k / bs]) * scale[n, k / bs]</c>.
/// </summary>
public sealed class PackedInt4Matrix
{
    private PackedInt4Matrix(int depth, int columns, int blockSize, byte[] data, float[] scales, float[] zeroPoints)
    {
        Depth = depth;
        Columns = columns;
        BlockSize = blockSize;
        Data = data;
        Scales = scales;
        ZeroPoints = zeroPoints;
    }

    /// <summary>K.</summary>
    public int Depth { get; }

    /// <summary>N.</summary>
    public int Columns { get; }

    /// <summary>Values per block along K (16 to 256, a power of two).</summary>
    public int BlockSize { get; }

    /// <summary>Blocks per column.</summary>
    public int BlocksPerColumn => (Depth + BlockSize - 1) / BlockSize;

    internal byte[] Data { get; }

    internal float[] Scales { get; }

    internal float[] ZeroPoints { get; }

    /// <summary>
    /// Wraps MatMulNBits operands: <paramref name="b"/> as <c>[N, blocks, blockSize / 2]</c> bytes,
    /// <paramref name="scales"/> as <c>[N, blocks]</c>, and zero points either packed 4-bit
    /// (<c>[N, ceil(blocks / 2)]</c> bytes) or float (<c>[N, blocks]</c>), or neither (8).
    /// </summary>
    public static PackedInt4Matrix FromMatMulNBits(ReadOnlySpan<byte> b, int depth, int columns, int blockSize, ReadOnlySpan<float> scales,
        ReadOnlySpan<byte> packedZeroPoints = default, ReadOnlySpan<float> floatZeroPoints = default)
    {
        if (blockSize < 16 || blockSize > 256 || (blockSize & (blockSize - 1)) != 0)
            throw new ArgumentException($"Block size {blockSize} is not a power of two from 16 to 256.", nameof(blockSize));
        ArgumentOutOfRangeException.ThrowIfNegative(depth);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        int blocks = (depth + blockSize - 1) / blockSize;
        long bytes = (long)columns * blocks * (blockSize / 2);
        if (b.Length != bytes) throw new ArgumentException($"B needs {bytes} bytes ([N, blocks, blockSize/2]), not {b.Length}.", nameof(b));
        if (scales.Length != columns * blocks) throw new ArgumentException($"Give {columns * blocks} scales ([N, blocks]), not {scales.Length}.", nameof(scales));

        var zeroPoints = new float[columns * blocks];
        if (!floatZeroPoints.IsEmpty)
        {
            if (floatZeroPoints.Length != zeroPoints.Length) throw new ArgumentException($"Give {zeroPoints.Length} float zero points.", nameof(floatZeroPoints));
            floatZeroPoints.CopyTo(zeroPoints);
        }
        else if (!packedZeroPoints.IsEmpty)
        {
            int perColumn = (blocks + 1) / 2;
            if (packedZeroPoints.Length != columns * perColumn)
                throw new ArgumentException($"Give {columns * perColumn} bytes of packed zero points ([N, ceil(blocks/2)]).", nameof(packedZeroPoints));
            for (int n = 0; n < columns; n++)
            {
                for (int j = 0; j < blocks; j++)
                {
                    byte pair = packedZeroPoints[n * perColumn + j / 2];
                    zeroPoints[n * blocks + j] = (j & 1) == 0 ? pair & 0x0F : pair >> 4;
                }
            }
        }
        else
        {
            Array.Fill(zeroPoints, 8f);
        }
        return new PackedInt4Matrix(depth, columns, blockSize, b.ToArray(), scales.ToArray(), zeroPoints);
    }

    /// <summary>The dequantized weight <c>W[n, k]</c> (for tests and references).</summary>
    public float Dequantize(int n, int k)
    {
        int blocks = BlocksPerColumn;
        int block = k / BlockSize;
        byte pair = Data[(long)(n * blocks + block) * (BlockSize / 2) + (k % BlockSize) / 2];
        int q = (k & 1) == 0 ? pair & 0x0F : pair >> 4;
        return (q - ZeroPoints[n * blocks + block]) * Scales[n * blocks + block];
    }
}
