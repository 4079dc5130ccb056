using Quantize.Kernels.IO;
using Quantize.Kernels.Tests.Support;

namespace Quantize.Kernels.Tests.Models;

/// <summary>Files written through a temporary beside them appear whole on commit, or not at all.</summary>
public class AtomicFileTests
{
    [Fact]
    public void Commit_renames_the_temporary_file_into_place()
    {
        using var temp = new TempFolder();
        string path = temp["out/model.bin"];
        File.WriteAllText(temp["out/../previous.txt"], "unrelated");

        string temporary;
        using (var file = AtomicFile.Create(path))
        {
            temporary = file.TemporaryPath;
            // Beside the destination (so the rename stays on one file system), hidden, and not the destination.
            Assert.Equal(Path.GetDirectoryName(path), Path.GetDirectoryName(temporary));
            Assert.StartsWith(".", Path.GetFileName(temporary));
            file.Stream.Write([1, 2, 3]);
            Assert.False(File.Exists(path));
            file.Commit();
        }

        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        Assert.False(File.Exists(temporary));
        Assert.Equal(["out/model.bin", "previous.txt"], temp.Files());
    }

    [Fact]
    public void Commit_replaces_an_existing_file_which_stays_whole_until_then()
    {
        using var temp = new TempFolder();
        string path = temp["model.bin"];
        File.WriteAllText(path, "old");

        using var file = AtomicFile.Create(path);
        file.Stream.Write("new content"u8);
        file.Stream.Flush();
        Assert.Equal("old", File.ReadAllText(path));
        file.Commit();

        Assert.Equal("new content", File.ReadAllText(path));
        Assert.Equal(["model.bin"], temp.Files());
    }

    [Fact]
    public void Dispose_without_commit_leaves_nothing()
    {
        using var temp = new TempFolder();
        string path = temp["model.bin"];

        using (var file = AtomicFile.Create(path))
        {
            file.Stream.Write(new byte[100_000]);
            Assert.True(File.Exists(file.TemporaryPath));
        }

        Assert.Empty(temp.Files());
    }

    [Fact]
    public void A_failing_write_leaves_the_previous_file_and_no_temporary()
    {
        using var temp = new TempFolder();
        string path = temp["model.bin"];
        File.WriteAllText(path, "old");

        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write(new byte[10_000]);
            throw new InvalidOperationException("the writer failed");
        }));

        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal(["model.bin"], temp.Files());
    }

    [Fact]
    public void A_commit_that_cannot_rename_leaves_no_temporary()
    {
        using var temp = new TempFolder();
        string path = temp["model.bin"];
        Directory.CreateDirectory(path);

        using (var file = AtomicFile.Create(path))
        {
            file.Stream.Write([1]);
            Assert.ThrowsAny<IOException>(file.Commit);
        }

        Assert.Empty(temp.Files());
    }

    [Fact]
    public void A_committed_file_cannot_be_committed_again()
    {
        using var temp = new TempFolder();
        using var file = AtomicFile.Create(temp["model.bin"]);
        file.Commit();

        Assert.Throws<ObjectDisposedException>(file.Commit);
        Assert.Equal(["model.bin"], temp.Files());
    }
}
