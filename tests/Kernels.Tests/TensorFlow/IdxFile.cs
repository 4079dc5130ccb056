using System.Buffers.Binary;
using Quantize.Kernels.Runtime;

namespace Quantize.Kernels.Tests.TensorFlow;

/// <summary>Reads the IDX tensors of utensor_cgen's op tests: two zero bytes, a type byte, the rank, big-endian dims and data.</summary>
internal static class IdxFile
{
    public static Tensor Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        byte type = bytes[2];
        int rank = bytes[3];
        var shape = new int[rank];
        for (int d = 0; d < rank; d++) shape[d] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4 + 4 * d));
        int offset = 4 + 4 * rank;
        int count = shape.Aggregate(1, (a, b) => a * b);
        switch (type)
        {
            case 0x0D:
            {
                var values = new float[count];
                for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadSingleBigEndian(bytes.AsSpan(offset + 4 * i));
                return Tensor.Create(values, shape);
            }
            case 0x0C:
            {
                var values = new int[count];
                for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(offset + 4 * i));
                return Tensor.Create(values, shape);
            }
            case 0x08:
                return Tensor.Create(bytes.AsSpan(offset, count).ToArray(), shape);
            default:
                throw new InvalidDataException($"{path}: IDX type 0x{type:X2} is not supported.");
        }
    }
}
