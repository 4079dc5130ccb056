using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>The 8 x 8 block transposes (bytes, 32-bit values) equal the scalar twin for every shape: whole blocks, edges, strides past the rows.</summary>
public class ConvolutionLoweringTransposeTests
{
    /// <summary>rows, columns, target stride: single values, whole blocks, edges both ways, NCHW-like strides.</summary>
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 1, 1, 1 }, { 8, 8, 8 }, { 7, 9, 7 }, { 16, 64, 20 }, { 61, 64, 3136 }, { 96, 24, 100 }, { 33, 130, 41 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Block_transpose_equals_the_scalar_twin(int rows, int columns, int targetStride)
    {
        var random = new Random(rows * 131 + columns);
        byte[] source = new byte[rows * columns];
        random.NextBytes(source);
        // Bytes of the target outside the transposed block must stay as they were.
        int length = (columns - 1) * targetStride + rows + 5;
        byte[] blocks = new byte[length], scalar = new byte[length];
        random.NextBytes(blocks);
        blocks.CopyTo(scalar, 0);
        ConvolutionLowering.TransposeBytes(source, rows, columns, blocks, targetStride);
        ConvolutionLowering.TransposeScalar<byte>(source, rows, columns, scalar, targetStride);
        Assert.Equal(scalar, blocks);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                Assert.Equal(source[r * columns + c], blocks[c * targetStride + r]);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Block_transpose_of_32_bit_values_equals_the_scalar_twin(int rows, int columns, int targetStride)
    {
        var random = new Random(rows * 17 + columns);
        // NaN payloads and negative zeros too: the values are moved, never computed on.
        float[] source = Enumerable.Range(0, rows * columns).Select(_ => BitConverter.Int32BitsToSingle(random.Next(int.MinValue, int.MaxValue))).ToArray();
        int length = (columns - 1) * targetStride + rows + 5;
        float[] blocks = Enumerable.Range(0, length).Select(_ => random.NextSingle()).ToArray();
        float[] scalar = [.. blocks];
        ConvolutionLowering.TransposeWords(source, rows, columns, blocks, targetStride);
        ConvolutionLowering.TransposeScalar<float>(source, rows, columns, scalar, targetStride);
        Assert.Equal(scalar.Select(BitConverter.SingleToInt32Bits), blocks.Select(BitConverter.SingleToInt32Bits));
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                Assert.Equal(BitConverter.SingleToInt32Bits(source[r * columns + c]), BitConverter.SingleToInt32Bits(blocks[c * targetStride + r]));
    }
}
